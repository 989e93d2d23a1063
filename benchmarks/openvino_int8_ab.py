"""OpenVINO int8: the QDQ graph made for onnxruntime, as it is and without its output re-quantisation, and
the model NNCF made for OpenVINO (`training.openvino_int8`, shipped beside the weights), at batch 1.

    cd benchmarks && python openvino_int8_ab.py [--configs tiny] [--threads 2] [--rounds 3]
                                                [--json ../docs/results/openvino_int8_ab.json]

Arms, each in a fresh process, alternating over ``--rounds``: ``graph`` ``qdq`` (`runtime.graphs.int8_graph`'s
QDQ graph from the shipped ranges as onnxruntime runs it, compiled with a dynamic batch: the default path
until 2026-12-08), ``qdq-static`` (the same, compiled for a static batch), ``float`` (the default since
2026-12-08: that graph without the re-quantisation of each convolution's output,
`runtime.quantize.float_conv_outputs`, static batch) or ``nncf`` (the shipped ``*.openvino-int8.xml``; a
config without one is skipped; the other arms hide it). Rows: the raw OpenVINO call on one crop,
`Detector.detect` with one given box (batch 1), network + decoding on 8 crops (per face), tracked video
(`FaceTracker` over 30-frame runs, the face detector at max_side 320) and the whole image (the default
face detector + landmarks) on the 640x480 frame of `inference_speed.py`; torch at one thread around the
call (as the CLI runs it).
Medians in ms; run it on a quiet machine.
"""

from __future__ import annotations

import json


def measure(config: str, graph: str, threads: int, repeats: int) -> dict:
    import numpy as np
    import torch

    import facelandmarks_smt.runtime.backends as backends
    from facelandmarks_smt import Detector
    from facelandmarks_smt.face_detection import get_face_detector
    from facelandmarks_smt.video import FaceTracker

    from inference_speed import WEIGHTS, frame_640x480, median_ms, weights_for

    weights, sha = weights_for(config)
    if weights is None:
        raise SystemExit(f"no shipped weights for {config} ({WEIGHTS.get(config)})")
    if graph != "nncf":
        backends.shipped_openvino_int8 = lambda sha256: None
    elif backends.shipped_openvino_int8(sha) is None:
        raise SystemExit(f"{config}: no shipped OpenVINO int8 model")
    if graph in ("qdq", "qdq-static"):
        backends.float_conv_outputs = lambda g: g  # the graph as onnxruntime runs it
    if graph == "qdq":
        runner = backends.OpenVINORunner
        backends.OpenVINORunner = lambda *a, static_batch=False, **k: runner(*a, static_batch=False, **k)
    torch.set_num_threads(1)
    det = Detector(weights, device="cpu", backend="openvino", precision="int8", threads=threads,
                   face_detector=get_face_detector("yunet", max_side=320))
    whole = Detector(weights, device="cpu", backend="openvino", precision="int8", threads=threads)
    frame, box = frame_640x480()
    crops, _ = det.crop(frame, box[None])
    x = det._to_input(crops)

    def clip():
        tracker = FaceTracker(det, fps=30.0, redetect_every=30)
        for i in range(30):
            tracker.update(frame, t=i / 30.0)

    raw = median_ms(lambda: det._runner(x), repeats)
    crops8, _ = det.crop(frame, box[None] + np.random.default_rng(0).uniform(-6, 6, (8, 4)))
    x8 = det._to_input(crops8)
    per_face_b8 = median_ms(lambda: det._runner.decoded(x8), max(3, repeats // 4)) / 8
    b1 = median_ms(lambda: det.detect(frame, box[None]), repeats)
    video = median_ms(clip, max(3, repeats // 10)) / 30
    image = median_ms(lambda: whole.detect(frame), repeats)
    return {"config": config, "graph": graph, "threads": threads, "ms_raw": round(raw, 2), "ms_b1": round(b1, 2),
            "ms_per_face_b8": round(per_face_b8, 2),
            "ms_video_frame": round(video, 2), "ms_whole_image": round(image, 2),
            "check": float(np.abs(det.detect(frame, box[None])[0].landmarks).sum())}


def main() -> None:
    from fresh_process_ab import ab_arguments, print_table, run_arms, write_json

    p = ab_arguments(__doc__, ("CONFIG", "GRAPH"), rounds=3)
    p.set_defaults(configs=["tiny"])
    args = p.parse_args()
    if args.arm:
        config, graph = args.arm
        print(json.dumps(measure(config, graph, args.threads, args.repeats)))
        return

    from machine import cpu_name
    import openvino
    import torch

    from facelandmarks_smt.runtime.graphs import shipped_openvino_int8
    from inference_speed import weights_for

    def has_nncf(config: str) -> bool:
        weights, sha = weights_for(config)
        return weights is not None and shipped_openvino_int8(sha) is not None

    arms = [(c, g) for c in args.configs for g in ("qdq", "qdq-static", "float") + (("nncf",) if has_nncf(c) else ())]
    results = run_arms(__file__, arms, args.rounds, ["--threads", str(args.threads), "--repeats", str(args.repeats)])
    header = (f"machine: {cpu_name()}, openvino {openvino.__version__} int8, detector threads {args.threads}, torch "
              f"{torch.__version__} at 1 thread, {args.rounds} rounds (each a fresh process), medians")
    print("\n" + header + "\n")
    print_table(results, arms, ("config", "graph"),
                [("ms_raw", "raw call ms"), ("ms_b1", "detect b1 ms"), ("ms_per_face_b8", "b8 ms/face (network + decoding)"), ("ms_video_frame", "tracked video ms/frame"),
                 ("ms_whole_image", "whole image ms")])
    write_json(args.json, header, results)


if __name__ == "__main__":
    main()
