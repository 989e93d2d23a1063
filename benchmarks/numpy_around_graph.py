"""What torch operations around a graph runtime's call cost at batch 1: an A/B on the default path.

    cd benchmarks && python numpy_around_graph.py [--configs tiny small] [--threads 2] [--rounds 3]
                                                  [--json ../docs/results/numpy_around_graph.json]

On the onnxruntime and openvino paths the library normalises the crops before the runtime's call
and decodes the heatmaps after it. Done by torch with more than one torch thread, the larger of
those operations (the normalisation of a 256x256x3 crop, the logsumexp of 68 heatmaps for the
confidences) run on libgomp's workers, which then spin-wait on the cores the runtime's own threads
need for the next call. The library now does both in numpy on CPU (`geometry.normalise_crops`,
`codec._logsumexp_last`), with the same numbers. Arms, each in a fresh process, alternating over
``--rounds``:

- ``pre/post in``: ``torch`` (the old path, rebuilt here by routing both operations back through
  torch) or ``numpy`` (the library now);
- torch's intra-op threads: ``--threads`` (what a user gets by default) or 1 (what the CLI sets for
  a graph backend, `cli.detect.quiet_torch_around_graph_runtime`).

Rows: `Detector.detect` with one given box (batch 1) and tracked video (`FaceTracker` over 30-frame
runs, the face detector at max_side 320) on the 640x480 frame of `inference_speed.py`, on the path
``backend="auto"`` picks here, medians in ms. Run it on a quiet machine, ``OMP_WAIT_POLICY`` unset.
"""

from __future__ import annotations

import json



def measure(config: str, prepost: str, torch_threads: int, threads: int, repeats: int) -> dict:
    """One arm, in this process: ms of detect with one box (batch 1) and of a tracked video frame."""
    import numpy as np
    import torch

    import facelandmarks_smt.codec as codec
    import facelandmarks_smt.detector as detector_module
    from facelandmarks_smt import Detector
    from facelandmarks_smt.face_detection import get_face_detector
    from facelandmarks_smt.video import FaceTracker

    from inference_speed import WEIGHTS, frame_640x480, median_ms, weights_for

    weights, _ = weights_for(config)
    if weights is None:
        raise SystemExit(f"no shipped weights for {config} ({WEIGHTS.get(config)})")
    if prepost == "torch":  # the old path: both operations in torch
        codec._logsumexp_last = lambda flat: torch.logsumexp(flat, dim=-1, keepdim=True)
        original = detector_module.normalise_crops

        def torch_normalise(crops, mean, std):
            return original(torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops,
                            mean, std)

        detector_module.normalise_crops = torch_normalise
    det = Detector(weights, device="cpu", threads=threads, face_detector=get_face_detector("yunet", max_side=320))
    torch.set_num_threads(torch_threads)
    frame, box = frame_640x480()

    def clip():
        tracker = FaceTracker(det, fps=30.0, redetect_every=30)
        for i in range(30):
            tracker.update(frame, t=i / 30.0)

    b1 = median_ms(lambda: det.detect(frame, box[None]), repeats)
    video = median_ms(clip, max(3, repeats // 10)) / 30
    return {"config": config, "prepost": prepost, "torch_threads": torch_threads, "threads": threads,
            "path": f"{det.backend} {det.precision}", "ms_b1": round(b1, 2), "ms_video_frame": round(video, 2),
            "check": float(np.abs(det.detect(frame, box[None])[0].landmarks).sum())}


def main() -> None:
    from fresh_process_ab import ab_arguments, print_table, run_arms, write_json

    p = ab_arguments(__doc__, ("CONFIG", "PREPOST", "TORCH_THREADS"), rounds=3)
    args = p.parse_args()
    if args.arm:
        config, prepost, tt = args.arm
        print(json.dumps(measure(config, prepost, int(tt), args.threads, args.repeats)))
        return

    from machine import cpu_name
    import torch

    arms = [(c, pp, t) for c in args.configs for pp in ("torch", "numpy") for t in (args.threads, 1)]
    results = run_arms(__file__, arms, args.rounds, ["--threads", str(args.threads), "--repeats", str(args.repeats)])
    for config in args.configs:  # the two ways must give the same landmarks
        sums = [r["check"] for r in results if r["config"] == config]
        if max(sums) - min(sums) > 1e-3 * max(1.0, abs(sums[0])):
            raise SystemExit(f"{config}: the arms' landmarks differ (sums {sorted(set(sums))})")
    header = (f"machine: {cpu_name()}, default path ({results[0]['path']} for {results[0]['config']}), detector "
              f"threads {args.threads}, torch {torch.__version__}, {args.rounds} rounds (each a fresh process), medians")
    print("\n" + header + "\n")
    print_table(results, arms, ("config", "prepost", "torch_threads"),
                [("ms_b1", "detect b1 ms"), ("ms_video_frame", "tracked video ms/frame")])
    write_json(args.json, header, results)


if __name__ == "__main__":
    main()
