"""Landmarks through a video, tracked and smoothed, written as an annotated MP4.

    python examples/video_smoothing.py clip.mp4 --out clip_landmarks.mp4
    python examples/video_smoothing.py clip.mp4 --min-cutoff 0.5 --beta 20     # steadier / snappier
    python examples/video_smoothing.py --quick        # a clip made from the sample photo

`FaceTracker` carries each face's box from the previous frame's landmarks, so the face detector
runs only on the first frame, every ``--redetect-every`` frames and when a track is lost. The
landmarks are smoothed with a One Euro filter (`facelandmarks_smt.video.one_euro`): ``--min-cutoff``
(Hz) sets how still a still face stays, ``--beta`` how quickly the filter follows fast motion.
The script prints the frame-to-frame movement of the raw and the smoothed landmarks.
The command-line tool does the same: ``facelandmarks-smt detect clip.mp4 --out results/``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from facelandmarks_smt import Detector
from facelandmarks_smt.drawing import draw_landmarks
from facelandmarks_smt.video import FaceTracker, SmoothingParams

SAMPLE = Path(__file__).resolve().parent / "astronaut.jpg"


def quick_clip(path: Path, frames: int = 12, fps: float = 25.0) -> Path:
    """A short clip: the sample face held still (with camera noise), then turning and sliding."""
    face = cv2.imread(str(SAMPLE))[0:256, 96:352]
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (256, 256))
    for t in range(frames):
        k = max(0, t - frames // 2) / max(1, frames - frames // 2 - 1)  # still for the first half
        m = cv2.getRotationMatrix2D((128.0, 127.0), 12.0 * k, 1.0)
        m[:, 2] += [16.0 * k, 8.0 * k]
        frame = cv2.warpAffine(face, m, (256, 256), borderMode=cv2.BORDER_REFLECT)
        writer.write(np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8))
    writer.release()
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", nargs="?", help="input video; --quick makes one from the sample photo")
    p.add_argument("--out", help="annotated MP4 to write (default: TMPDIR/<video>_landmarks.mp4)")
    p.add_argument("--weights", default="smtnet-300w-small", help="pretrained name or .safetensors file")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--min-cutoff", type=float, default=1.0, help="One Euro cutoff (Hz) of a still face")
    p.add_argument("--beta", type=float, default=10.0, help="One Euro speed coefficient (per face size / s)")
    p.add_argument("--d-cutoff", type=float, default=1.0, help="One Euro cutoff (Hz) of the speed estimate")
    p.add_argument("--redetect-every", type=int, default=30, help="run the face detector at least every N frames")
    p.add_argument("--quick", action="store_true", help="run on a 12-frame clip made from the sample photo")
    args = p.parse_args(argv)
    if args.video is None and not args.quick:
        p.error("give a video, or --quick")
    tmp = Path(tempfile.gettempdir())
    video = Path(args.video) if args.video else quick_clip(tmp / "facelandmarks_smt_quick_clip.mp4")
    out = Path(args.out) if args.out else tmp / f"{video.stem}_landmarks.mp4"

    det = Detector.from_pretrained(args.weights, device=args.device)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    tracker = FaceTracker(det, fps=fps, redetect_every=args.redetect_every,
                          smoothing=SmoothingParams(args.min_cutoff, args.beta, args.d_cutoff))
    writer = None
    raw, smoothed = {}, {}  # track id -> list of (frame, landmarks)
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        tracked = tracker.update(rgb)
        for tf in tracked:
            raw.setdefault(tf.track_id, []).append((n, tf.raw_landmarks))
            smoothed.setdefault(tf.track_id, []).append((n, tf.face.landmarks))
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (rgb.shape[1], rgb.shape[0]))
        writer.write(cv2.cvtColor(draw_landmarks(rgb, [tf.face for tf in tracked], inset=False), cv2.COLOR_RGB2BGR))
        n += 1
    cap.release()
    if writer is not None:
        writer.release()

    def movement(track):  # mean landmark movement between consecutive frames of one track, px
        steps = [np.linalg.norm(b - a, axis=1).mean() for (i, a), (j, b) in zip(track, track[1:]) if j == i + 1]
        return float(np.mean(steps)) if steps else float("nan")

    print(f"{n} frames at {fps:.1f} fps, {len(raw)} track(s), face detector ran on {tracker.detector_runs} frames")
    for tid in raw:
        print(f"  track {tid}: {len(raw[tid])} frames, landmark movement per frame: raw {movement(raw[tid]):.2f} px, "
              f"smoothed {movement(smoothed[tid]):.2f} px")
    print(f"wrote {out}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
