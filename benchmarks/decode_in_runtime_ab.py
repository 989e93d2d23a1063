"""Decoding inside the graph runtime (`Runner.decoded` runs `codec.HeatmapDecoder`'s exported graph
right after the network) against decoding in Python/torch after the call, on the default-style paths
at batch 1.

    cd benchmarks && python decode_in_runtime_ab.py [--configs tiny small] [--threads 2] [--rounds 3]
                                                    [--json ../docs/results/decode_in_runtime_ab.json]

Arms, each in a fresh process, alternating over ``--rounds``: backend ``openvino`` (int8, as the
default path runs it on a CPU with native bf16) or ``onnxruntime`` (fp32, the default elsewhere),
decoding ``runtime`` (the graph) or ``python`` (the runner's class given `runner.Runner.decoded`: the
heatmaps come back to Python and torch/numpy decode them, as before). Rows: `Detector.detect` with one
given box, tracked video (`FaceTracker` over 30-frame runs, the face detector at max_side 320) and the
whole image (the default face detector + landmarks) on the 640x480 frame of `inference_speed.py`; torch
at one thread around the call (as the CLI runs it). Medians in ms; run it on a quiet machine.
"""

from __future__ import annotations

import json


def measure(config: str, backend: str, decode: str, threads: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from facelandmarks_smt import Detector
    from facelandmarks_smt.face_detection import get_face_detector
    from facelandmarks_smt.runtime.runner import Runner

    from inference_speed import WEIGHTS, frame_640x480, median_ms, tracked_ms_per_frame, weights_for

    weights, _ = weights_for(config)
    if weights is None:
        raise SystemExit(f"no shipped weights for {config} ({WEIGHTS.get(config)})")
    torch.set_num_threads(1)
    precision = "int8" if backend == "openvino" else "fp32"
    det = Detector(weights, device="cpu", backend=backend, precision=precision, threads=threads,
                   face_detector=get_face_detector("yunet", max_side=320))
    whole = Detector(weights, device="cpu", backend=backend, precision=precision, threads=threads)
    if decode == "python":
        type(det._runner).decoded = Runner.decoded  # both detectors' runners share the class
    frame, box = frame_640x480()

    b1 = median_ms(lambda: det.detect(frame, box[None]), repeats)
    video = tracked_ms_per_frame(det, frame, repeats)
    image = median_ms(lambda: whole.detect(frame), repeats)
    return {"config": config, "backend": backend, "precision": precision, "decode": decode, "threads": threads,
            "ms_b1": round(b1, 2), "ms_video_frame": round(video, 2), "ms_whole_image": round(image, 2),
            "check": float(np.abs(det.detect(frame, box[None])[0].landmarks).sum())}


def main() -> None:
    from fresh_process_ab import ab_arguments, print_table, run_arms, write_json

    p = ab_arguments(__doc__, ("CONFIG", "BACKEND", "DECODE"), rounds=3)
    p.set_defaults(configs=["tiny"])
    p.add_argument("--backends", nargs="+", default=["openvino", "onnxruntime"], choices=["openvino", "onnxruntime"])
    args = p.parse_args()
    if args.arm:
        config, backend, decode = args.arm
        print(json.dumps(measure(config, backend, decode, args.threads, args.repeats)))
        return

    from machine import cpu_name
    import torch

    arms = [(c, b, d) for c in args.configs for b in args.backends for d in ("runtime", "python")]
    results = run_arms(__file__, arms, args.rounds, ["--threads", str(args.threads), "--repeats", str(args.repeats)])
    header = (f"machine: {cpu_name()}, detector threads {args.threads}, torch {torch.__version__} at 1 thread, "
              f"{args.rounds} rounds (each a fresh process), medians")
    print("\n" + header + "\n")
    print_table(results, arms, ("config", "backend", "decode"),
                [("ms_b1", "detect b1 ms"), ("ms_video_frame", "tracked video ms/frame"),
                 ("ms_whole_image", "whole image ms")])
    write_json(args.json, header, results)


if __name__ == "__main__":
    main()
