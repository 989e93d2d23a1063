"""What torch's threads cost around a graph runtime's call: an A/B on the openvino bf16 path.

    cd benchmarks && python graph_runtime_threads.py [--configs tiny small] [--threads 2] [--rounds 2]
                                                    [--json ../docs/results/graph_runtime_threads.json]

On the openvino and onnxruntime paths torch only normalises the crops and decodes the heatmaps
around the runtime's call, but with more than one torch thread those small ops wake libgomp's
workers, which then spin-wait (its default) on the cores the runtime's own threads need for the
next call. Two things are compared, each in a fresh process, the arms alternating over ``--rounds``:

- where the last heads of openvino's bf16 path run: ``torch`` (the first build: the trunk in
  OpenVINO bf16, `SMTNet.last_heads` in torch fp32 at the detector's thread count) or ``openvino``
  (now: the heads graph, ``export_onnx(part="heads")``, as a second OpenVINO model in fp32);
- torch's intra-op threads in the process: ``--threads`` (what a user gets by default) or 1 (what the
  CLI sets for a graph backend, `cli.detect.quiet_torch_around_graph_runtime`).

Rows: `Detector.predict_crops` on one crop (batch 1), and tracked video (`FaceTracker` over 30-frame
runs, the face detector at max_side 320) on the 640x480 frame of `inference_speed.py`, medians in ms.
Run it on a quiet machine; set nothing in the environment (``OMP_WAIT_POLICY`` unset).
"""

from __future__ import annotations

import json



def measure(config: str, heads: str, torch_threads: int, threads: int, repeats: int) -> dict:
    """One arm, in this process: ms of predict_crops at batch 1 and of a tracked video frame."""
    import numpy as np
    import torch

    from facelandmarks_smt import Detector
    from facelandmarks_smt.face_detection import get_face_detector
    from facelandmarks_smt.runtime.device import torch_threads as scoped_threads
    from facelandmarks_smt.runtime.export import cached_onnx
    from facelandmarks_smt.runtime.openvino_backend import compile_config, openvino_core
    from facelandmarks_smt.video import FaceTracker
    from facelandmarks_smt.weights_io import sha256_file

    from inference_speed import WEIGHTS, frame_640x480, median_ms, weights_for

    weights, sha = weights_for(config)
    if weights is None:
        raise SystemExit(f"no shipped weights for {config} ({WEIGHTS.get(config)})")
    det = Detector(weights, device="cpu", backend="openvino", precision="bf16", threads=threads,
                   face_detector=get_face_detector("yunet", max_side=320))
    if heads == "torch":  # the first build of this path, rebuilt here for the comparison
        trunk = openvino_core().compile_model(str(cached_onnx(det.model, sha or sha256_file(weights), part="trunk")),
                                              "CPU", compile_config("bf16", threads))
        request, model = trunk.create_infer_request(), det.model

        def runner(x):
            out = request.infer({0: x.detach().float().contiguous().numpy()}, share_inputs=True, share_outputs=True)
            with scoped_threads(threads), torch.inference_mode():
                return model.last_heads(torch.from_numpy(out["features"]), torch.from_numpy(out["centre"]))

        det._runner = runner
    torch.set_num_threads(torch_threads)
    frame, box = frame_640x480()
    crops, _ = det.crop(frame, box[None])

    def clip():
        tracker = FaceTracker(det, fps=30.0, redetect_every=30)
        for i in range(30):
            tracker.update(frame, t=i / 30.0)

    b1 = median_ms(lambda: det.predict_crops(crops), repeats)
    video = median_ms(clip, max(3, repeats // 10)) / 30
    return {"config": config, "heads": heads, "torch_threads": torch_threads, "threads": threads,
            "ms_b1": round(b1, 2), "ms_video_frame": round(video, 2), "check": float(np.abs(det.predict_crops(crops)).sum())}


def main() -> None:
    from fresh_process_ab import ab_arguments, print_table, run_arms, write_json

    p = ab_arguments(__doc__, ("CONFIG", "HEADS", "TORCH_THREADS"), rounds=2)
    args = p.parse_args()
    if args.arm:
        config, heads, tt = args.arm
        print(json.dumps(measure(config, heads, int(tt), args.threads, args.repeats)))
        return

    from machine import cpu_name
    import torch

    arms = [(c, h, t) for c in args.configs for h in ("torch", "openvino") for t in (args.threads, 1)]
    results = run_arms(__file__, arms, args.rounds, ["--threads", str(args.threads), "--repeats", str(args.repeats)])
    header = (f"machine: {cpu_name()}, openvino bf16 path, detector threads {args.threads}, torch {torch.__version__}, "
              f"{args.rounds} rounds (each a fresh process), medians")
    print("\n" + header + "\n")
    print_table(results, arms, ("config", "heads", "torch_threads"),
                [("ms_b1", "ms/face b1"), ("ms_video_frame", "tracked video ms/frame")])
    write_json(args.json, header, results)


if __name__ == "__main__":
    main()
