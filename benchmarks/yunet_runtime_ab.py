"""YuNet run by OpenCV (``cv2.FaceDetectorYN``) against YuNet's network on OpenVINO with OpenCV's
post-processing in numpy (`yunet_openvino`, ``YuNetFaceDetector(runtime=...)``), alone and in the
paths a user times.

    cd benchmarks && python yunet_runtime_ab.py [--configs tiny] [--threads 2] [--rounds 3]
                                                [--json ../docs/results/yunet_runtime_ab.json]

Arms, each in a fresh process, alternating over ``--rounds``: runtime ``opencv``, ``openvino`` (a size that
keeps coming gets a static model, `yunet_openvino.STATIC_AFTER`) or ``openvino-dynamic`` (the dynamic model
only, as before 2026-12-08).
Rows, on the 640x480 frame of `inference_speed.py`: YuNet alone at full resolution and at max_side 320
(the video setting), the whole image (face detector + landmarks, `Detector.detect(frame)`, the
landmarks on the default path) and tracked video (`FaceTracker`, 30-frame runs, the face detector at
max_side 320 once in 30 frames). OpenCV's threads set to ``--threads`` (``cv2.setNumThreads``), as
OpenVINO's; torch at one thread. Medians in ms; run it on a quiet machine.
"""

from __future__ import annotations

import json


def measure(config: str, runtime: str, threads: int, repeats: int) -> dict:
    import cv2
    import numpy as np
    import torch

    from facelandmarks_smt import Detector
    from facelandmarks_smt.face_detection import get_face_detector

    from inference_speed import WEIGHTS, frame_640x480, median_ms, tracked_ms_per_frame, weights_for

    arm_runtime = runtime
    weights, _ = weights_for(config)
    if weights is None:
        raise SystemExit(f"no shipped weights for {config} ({WEIGHTS.get(config)})")
    torch.set_num_threads(1)
    cv2.setNumThreads(threads)
    if runtime == "openvino-dynamic":
        import facelandmarks_smt.yunet_openvino as yunet_openvino

        yunet_openvino.STATIC_AFTER, runtime = 10 ** 9, "openvino"
    full = get_face_detector("yunet", runtime=runtime, threads=threads)
    small = get_face_detector("yunet", runtime=runtime, threads=threads, max_side=320)
    whole = Detector(weights, device="cpu", threads=threads, face_detector=full)
    video = Detector(weights, device="cpu", threads=threads, face_detector=small)
    frame, _ = frame_640x480()

    row = {"config": config, "runtime": arm_runtime, "threads": threads, "landmarks_path": f"{whole.backend} {whole.precision}",
           "ms_yunet_full": round(median_ms(lambda: full.detect(frame), repeats), 2),
           "ms_yunet_320": round(median_ms(lambda: small.detect(frame), repeats), 2),
           "ms_whole_image": round(median_ms(lambda: whole.detect(frame), repeats), 2),
           "ms_video_frame": round(tracked_ms_per_frame(video, frame, repeats), 2)}
    faces = whole.detect(frame)
    row["faces"] = len(faces)
    row["check"] = float(np.abs(faces[0].landmarks).sum()) if faces else 0.0
    return row


def main() -> None:
    from fresh_process_ab import ab_arguments, print_table, run_arms, write_json

    p = ab_arguments(__doc__, ("CONFIG", "RUNTIME"), rounds=3)
    p.set_defaults(configs=["tiny"])
    args = p.parse_args()
    if args.arm:
        config, runtime = args.arm
        print(json.dumps(measure(config, runtime, args.threads, args.repeats)))
        return

    from machine import cpu_name
    import cv2
    import openvino
    import torch

    arms = [(c, r) for c in args.configs for r in ("opencv", "openvino-dynamic", "openvino")]
    results = run_arms(__file__, arms, args.rounds, ["--threads", str(args.threads), "--repeats", str(args.repeats)])
    header = (f"machine: {cpu_name()}, opencv {cv2.__version__}, openvino {openvino.__version__}, threads "
              f"{args.threads}, torch {torch.__version__} at 1 thread, {args.rounds} rounds (each a fresh process), "
              "medians")
    print("\n" + header + "\n")
    print_table(results, arms, ("config", "runtime"),
                [("ms_yunet_full", "YuNet 640x480 ms"), ("ms_yunet_320", "YuNet max_side 320 ms"),
                 ("ms_whole_image", "whole image ms"), ("ms_video_frame", "tracked video ms/frame")])
    write_json(args.json, header, results)


if __name__ == "__main__":
    main()
