"""``facelandmarks-smt detect``: faces and landmarks of images, folders and videos.

    facelandmarks-smt detect photo.jpg folder/ clip.mp4 --out results/
    facelandmarks-smt detect folder/ --out results/ --no-annotate --min-face-score 0.5
    facelandmarks-smt detect clip.mp4 --out results/ --smooth-min-cutoff 0.5 --smooth-beta 20
    facelandmarks-smt detect folder/ --out results/ --backend onnxruntime --precision int8 --calibration DIR

``detect`` takes images, folders (searched recursively) and videos, and writes to ``--out``:
``results.json`` (every face with its landmarks, per-landmark scores, box and detector score),
``results.csv`` (one row per face: file, frame, face, score, x0, y0, ..., x{L-1}, y{L-1}; ``score``
is the face's mean landmark score, ``face`` the face's index in an image or its track id in a video)
and, unless ``--no-annotate``, annotated images and MP4s under ``annotated/``. A file that cannot be
read gets one line on stderr and the others go on; the exit status is 0 when every file worked,
1 when any failed, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from .common import supported_kwargs

HELP = "find faces and landmarks in images, folders and videos"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
#: MPEG-4 Part 2: the codec that opencv-python(-headless) wheels can write (their FFmpeg has no
#: H.264 encoder). Plays in VLC/ffmpeg; browsers may need a re-encode (ffmpeg -i in.mp4 -c:v libx264).
VIDEO_FOURCC = "mp4v"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="images, folders (searched recursively) or videos")
    p.add_argument("--out", required=True, help="output folder for results.json, results.csv and annotated/")
    p.add_argument("--weights", default="smtnet-300w-small",
                   help="a registered pretrained name or a .safetensors weights file")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the network call (torch, onnxruntime or openvino; default: the library's "
                        "choice)")
    p.add_argument("--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                   help="what runs the network: auto (default: the fastest for this machine, see --precision), torch, "
                        "onnxruntime (CPU; the graph is exported once and cached), or openvino (CPU, optional: "
                        "pip install 'facelandmarks_smt[openvino]'; the same cached graphs)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                   help="auto (default: torch bf16 on CPUs with AVX-512 BF16 or AMX, else onnxruntime fp32 when "
                        "installed, else torch fp32; fp32 on CUDA; never int8); fp32; bf16 (torch, CPUs with AVX-512 "
                        "BF16 or AMX; openvino too, there only); int8 (onnxruntime or openvino, calibrated once on "
                        "--calibration folders, then cached). results.json records the path chosen")
    p.add_argument("--calibration", nargs="+", metavar="DIR", default=None,
                   help="with --precision int8: folders of annotated *training* faces (images + .pts) to calibrate "
                        "on, needed once per weights (never test faces)")
    p.add_argument("--flip-test", action="store_true",
                   help="average each face with its mirror image (more accurate, twice the work)")
    p.add_argument("--scheme", default=None,
                   help="landmark scheme to report, e.g. 300w-49 or aflw-19 from a 68-point model "
                        "(default: the model's own)")
    p.add_argument("--min-face-score", type=float, default=None,
                   help="drop detected faces whose face-detector score is below this (default: the detector's)")
    p.add_argument("--detector-max-side", type=int, default=None, metavar="PX",
                   help="search for faces on a copy shrunk to this longer side (e.g. 320: about 4x cheaper "
                        "face detection on 640x480 video; misses faces under ~20 px there). Default: full size")
    p.add_argument("--no-annotate", action="store_true", help="write no annotated images or videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    v = p.add_argument_group("video", "Faces are tracked: the box of each frame comes from the previous frame's "
                             "landmarks; the face detector runs on the first frame, every --redetect-every "
                             "frames and when a track is lost. Landmarks are smoothed with a One Euro filter "
                             "(Casiez et al. 2012) whose speeds are in face sizes per second.")
    v.add_argument("--redetect-every", type=int, default=30, help="run the face detector at least every N frames")
    v.add_argument("--min-landmark-score", type=float, default=0.2,
                   help="a track whose mean landmark score falls below this is lost and re-detected")
    v.add_argument("--no-smooth", action="store_true", help="report raw per-frame landmarks")
    v.add_argument("--smooth-min-cutoff", type=float, default=1.0,
                   help="One Euro cutoff (Hz) of a still face; lower = less jitter, more lag")
    v.add_argument("--smooth-beta", type=float, default=10.0,
                   help="One Euro speed coefficient; higher = less lag on fast motion")
    v.add_argument("--smooth-d-cutoff", type=float, default=1.0, help="One Euro cutoff (Hz) of the speed estimate")


def scheme_converter(num_landmarks: int, scheme: str | None) -> tuple[str | None, Callable | None]:
    """``(scheme name, points -> points)`` turning a model's landmarks into ``scheme``; None: as is
    (`schemes.scheme_conversion`, the conversion `Detector` uses too)."""
    from ..schemes import get_scheme, scheme_conversion

    conv = scheme_conversion(num_landmarks, scheme)
    if conv is None:
        return (None if scheme is None else get_scheme(scheme).name), None
    return conv.name, conv.points


def iter_inputs(paths: list[str]) -> Iterator[tuple[Path, str]]:
    """``(file, output name)`` for every input file: folders are walked recursively (sorted, image and
    video files only); a name the user gave directly is passed on whatever its extension."""
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = False
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    f = Path(root) / name
                    if f.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                        found = True
                        yield f, str(Path(p.resolve().name or "root") / f.relative_to(p))
            if not found:
                yield p, ""  # reported as an error: an empty folder is most likely a wrong path
        else:
            yield p, p.name


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


class _Writers:
    """results.json and results.csv, written as files are processed so big runs hold little."""

    def __init__(self, out: Path, num_landmarks: int, model_info: dict) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self._json = open(out / "results.json", "w")
        self._json.write('{"model": ' + json.dumps(model_info) + ', "files": [\n')
        self._first = True
        self._csv_file = open(out / "results.csv", "w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(["file", "frame", "face", "score"]
                           + [f"{a}{i}" for i in range(num_landmarks) for a in ("x", "y")])

    def add(self, record: dict, rows: list[list]) -> None:
        self._json.write(("" if self._first else ",\n") + json.dumps(record))
        self._first = False
        self._csv.writerows(rows)
        self._json.flush()
        self._csv_file.flush()

    def close(self) -> None:
        self._json.write("\n]}\n")
        self._json.close()
        self._csv_file.close()


def _r(v: float, nd: int = 2) -> float:
    return round(float(v), nd)


def _face_record(index: int, landmarks, face, frame: int | None = None, **extra) -> tuple[dict, list]:
    score = float(face.scores.mean())
    rec = {"face": index, "score": _r(score, 4),
           "detection_score": None if face.detection_score is None else _r(face.detection_score, 4),
           "box": [_r(v) for v in face.box], "landmarks": [[_r(x), _r(y)] for x, y in landmarks],
           "landmark_scores": [_r(s, 4) for s in face.scores]}
    if frame is not None:
        rec = {"frame": frame, **rec}
    rec.update(extra)
    row = [frame if frame is not None else 0, index, _r(score, 4)] + [_r(v) for v in landmarks.reshape(-1)]
    return rec, row


class _Unique:
    """Output names that never overwrite each other (two inputs called photo.jpg)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        stem, suffix = os.path.splitext(name)
        candidate, k = name, 1
        while candidate.lower() in self.used:
            k += 1
            candidate = f"{stem}_{k}{suffix}"
        self.used.add(candidate.lower())
        return candidate


def _process_image(path: Path, detect: Callable, convert, annotate_to: Path | None):
    from ..images import load_image

    image = load_image(path)
    faces = detect(image)
    records, rows = [], []
    for i, f in enumerate(faces):
        pts = convert(f.landmarks) if convert else f.landmarks
        rec, row = _face_record(i, pts, f)
        records.append(rec)
        rows.append([str(path)] + row)
    if annotate_to is not None:
        import cv2

        from ..drawing import draw_landmarks

        annotate_to.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(annotate_to), cv2.cvtColor(draw_landmarks(image, faces), cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {annotate_to}")
    return {"file": str(path), "type": "image", "width": image.shape[1], "height": image.shape[0],
            "faces": records}, rows


def _process_video(path: Path, tracker_factory, convert, annotate_to: Path | None, progress: bool):
    import cv2
    from tqdm import tqdm

    from ..drawing import draw_landmarks

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}: not a video or unsupported codec")
    writer = None
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and fps > 0 and fps < 1000 else 30.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        tracker = tracker_factory(fps)
        records, rows, n = [], [], 0
        bar = tqdm(total=total, desc=path.name, unit="frame", leave=False, disable=not progress)
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            tracked = tracker.update(rgb)
            for tf in tracked:
                pts = convert(tf.face.landmarks) if convert else tf.face.landmarks
                rec, row = _face_record(tf.track_id, pts, tf.face, frame=n, detected=tf.detected)
                records.append(rec)
                rows.append([str(path)] + row)
            if annotate_to is not None:
                if writer is None:
                    annotate_to.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(annotate_to), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps,
                                             (rgb.shape[1], rgb.shape[0]))
                    if not writer.isOpened():
                        raise OSError(f"could not open {annotate_to} for writing ({VIDEO_FOURCC})")
                writer.write(cv2.cvtColor(draw_landmarks(rgb, [t.face for t in tracked], inset=False),
                                          cv2.COLOR_RGB2BGR))
            n += 1
            bar.update(1)
        bar.close()
        if n == 0:
            raise ValueError(f"cannot read any frame from video {path}")
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return {"file": str(path), "type": "video", "fps": fps, "frames": n, "detector_runs": tracker.detector_runs,
            "faces": records}, rows


def _error(msg: str, progress_bar) -> None:
    line = f"facelandmarks-smt: error: {msg}"
    if progress_bar is not None and not progress_bar.disable:
        progress_bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def quiet_torch_around_graph_runtime(backend: str) -> None:
    """This command's process runs the network on ``backend``; where that is onnxruntime or OpenVINO,
    torch only normalises the crops and decodes the heatmaps around each call, and with more than one
    thread its OpenMP workers then spin-wait on the cores the runtime needs for the next call. The
    command owns its process, so it gives torch one thread while it runs (`run` puts the count back
    for callers that run it in-process, such as tests; a library call cannot do this, the setting is
    process-wide and switching it per call costs as much as it saves). Measured, openvino bf16, tiny, one crop a call, 2 cores: 17.5 -> 14.8 ms
    (docs/benchmarks.md)."""
    from ..runtime.backends import GRAPH_BACKENDS

    if backend in GRAPH_BACKENDS:
        import torch

        torch.set_num_threads(1)


def run(args: argparse.Namespace) -> int:
    import torch

    threads = torch.get_num_threads()
    try:
        return _run(args)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..detector import Detector
    from ..video import FaceTracker, SmoothingParams

    init_extra = {"threads": args.threads, "backend": args.backend, "precision": args.precision,
                  "flip_test": args.flip_test, "calibration": args.calibration}
    try:
        if args.detector_max_side is not None:
            from ..face_detection import get_face_detector

            init_extra["face_detector"] = get_face_detector("yunet", max_side=args.detector_max_side,
                                                            threads=args.threads)
        det = Detector.from_pretrained(args.weights, device=args.device, **init_extra)
        scheme, convert = scheme_converter(det.num_landmarks, args.scheme)
        smoothing = None if args.no_smooth else SmoothingParams(args.smooth_min_cutoff, args.smooth_beta,
                                                                 args.smooth_d_cutoff)
        if smoothing is not None:
            smoothing.make()  # checks the parameters before any file is read
        FaceTracker(det, redetect_every=args.redetect_every, min_landmark_score=args.min_landmark_score)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:  # ImportError: an optional backend
        print(f"facelandmarks-smt: error: {e}", file=sys.stderr)
        return 2
    quiet_torch_around_graph_runtime(det.backend)

    # min_face_score: the detector's own option where it has one, else filter on Face.detection_score
    detect_kwargs, missing = supported_kwargs(det.detect, {"min_face_score": args.min_face_score})
    face_filter = None
    if "min_face_score" in missing:
        thr = args.min_face_score
        face_filter = lambda f: f.detection_score is None or f.detection_score >= thr  # noqa: E731

    def detect(image):
        faces = det.detect(image, **detect_kwargs)
        return [f for f in faces if face_filter(f)] if face_filter else faces

    def tracker_factory(fps: float) -> FaceTracker:
        return FaceTracker(det, fps=fps, redetect_every=args.redetect_every,
                           min_landmark_score=args.min_landmark_score, smoothing=smoothing,
                           detect_kwargs=detect_kwargs, face_filter=face_filter)

    num_points = det.num_landmarks if convert is None else len(convert(np.zeros((det.num_landmarks, 2))))
    out = Path(args.out)
    model_info = {"weights": str(args.weights), "config": det.config.name, "num_landmarks": det.num_landmarks,
                  "scheme": scheme or det.config.scheme, "device": str(det.device), "backend": det.backend,
                  "precision": det.precision, "flip_test": det.flip_test,
                  "smoothing": None if smoothing is None else vars(smoothing),
                  "redetect_every": args.redetect_every, "min_landmark_score": args.min_landmark_score,
                  "min_face_score": args.min_face_score}
    writers = _Writers(out, num_points, model_info)
    unique = _Unique()
    progress = not args.no_progress
    inputs = list(iter_inputs(args.paths))
    failed = faces_found = 0
    bar = tqdm(inputs, unit="file", disable=not progress or len(inputs) < 2)
    try:
        for path, name in bar:
            try:
                if not path.exists():
                    raise FileNotFoundError(f"no such file or folder: {path}")
                if path.is_dir():
                    raise FileNotFoundError(f"no image or video files in folder {path}")
                if _is_video(path):
                    target = None if args.no_annotate else out / "annotated" / unique(str(Path(name).with_suffix(".mp4")))
                    record, rows = _process_video(path, tracker_factory, convert, target, progress)
                else:
                    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"
                    target = None if args.no_annotate else out / "annotated" / unique(str(Path(name).with_suffix(suffix)))
                    record, rows = _process_image(path, detect, convert, target)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # one bad file must not stop a big run
                failed += 1
                writers.add({"file": str(path), "error": f"{type(e).__name__}: {e}"}, [])
                _error(f"{path}: {e}", bar)
                continue
            faces_found += len(rows)
            writers.add(record, rows)
    finally:
        writers.close()
    print(f"{len(inputs) - failed} of {len(inputs)} files done, {faces_found} faces; results in {out}",
          file=sys.stderr)
    return 1 if failed else 0


_add_detect_arguments, run_detect = add_arguments, run  # the names before the cli package
