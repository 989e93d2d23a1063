"""Inference speed per face, every backend and precision, in one run on the same faces.

    python benchmarks/inference_speed.py [--quick] [--configs small tiny] [--threads N]
                                         [--data /path/to/landmarks68] [--json out.json]

One table: ms per face at batch 1 and batch 8 and the achieved GFLOP/s (FLOPs per face from
`model_stats.count_gflops`, as in docs/model.md) for each config on torch fp32, torch bf16,
onnxruntime fp32 and onnxruntime int8, openvino fp32 and openvino int8 (the same two graphs compiled
by OpenVINO's CPU plugin; skipped with a note when ``openvino`` is not installed: ``pip install
'facelandmarks_smt[openvino]'``), with each precision's 300-W common-set NME for the
shipped weights (read from docs/results/precision_nme_<weights>.json when its weights sha256 matches,
else computed by `precision_nme.py` in this run; ``--quick`` skips it). Below it: the whole
pipeline (bundled face detector + crop + landmarks, on the default path) on a 640x480 image with one face, dlib's
68-point predictor and FAN's network (face-alignment's 4-stack hourglass, random weights, same
256x256 input) when those packages are installed, and, when CUDA is available, faces/s at batch
256 in bf16.

Times are medians of ``--repeats`` calls after 2 warm-up calls, through the public API
(`Detector.predict_crops` for the network rows, `Detector.detect` for the pipeline), on crops of
the committed astronaut photo. Configs without shipped weights are timed with random weights
(same FLOPs). int8 graphs are calibrated on crops of the 300-W training folders under ``--data``
(or, without data, on jittered astronaut crops: then only its timing is meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.runtime.device import cpu_has_native_bf16
from facelandmarks_smt.runtime.backends import AUTO, GRAPH_BACKENDS, auto_int8_ready, resolve_path
from facelandmarks_smt.runtime.graphs import shipped_openvino_int8
from facelandmarks_smt.face_detection import get_face_detector
from facelandmarks_smt.images import load_image
from facelandmarks_smt.video import FaceTracker
from facelandmarks_smt.weights_io import sha256_file

from machine import cpu_name  # benchmarks/ scripts run from this folder
from model_stats import count_gflops
from precision_nme import DEFAULT_DATA, default_json, evaluate_precisions, training_folders

REPO = Path(__file__).resolve().parent.parent
VIDEO_MAX_SIDE = 320  # face detection on a 320x240 copy of a 640x480 frame
TRACK_REDETECT = 30  # FaceTracker's default: the face detector at least every 30 frames
BOX = np.array([178.0, 85.0, 260.0, 180.0])  # the astronaut's landmark box, roughly
WEIGHTS = {"small": "smtnet-300w-small", "tiny": "smtnet-300w-tiny"}
VARIANTS = [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
            ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "int8-nncf")]
#: precision_nme.py's variant labels
NME_LABELS = {("torch", "fp32"): "torch fp32", ("torch", "bf16"): "torch bf16",
              ("onnxruntime", "fp32"): "onnxruntime fp32", ("onnxruntime", "int8"): "onnxruntime int8",
              ("openvino", "fp32"): "openvino fp32", ("openvino", "bf16"): "openvino bf16",
              ("openvino", "int8"): "openvino int8", ("openvino", "int8-nncf"): "openvino int8, NNCF model"}


def median_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000


def frame_640x480() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo scaled to 480x480 and centred on a 640x480 frame, and its face box."""
    img = cv2.resize(load_image(REPO / "examples" / "astronaut.jpg"), (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = img
    return frame, BOX * 480 / 512 + [80, 0, 80, 0]


def weights_for(config: str) -> tuple[str | None, str | None]:
    """(path, sha256) of the shipped weights of a config, or (None, None) to time random weights."""
    name = WEIGHTS.get(config)
    if name is None:
        return None, None
    try:
        path, _ = hub.resolve(name)
    except (FileNotFoundError, ValueError):  # not installed, or not registered yet (tiny)
        return None, None
    return str(path), sha256_file(path)


def make_detector(config: str, weights: str | None, backend: str, precision: str, threads: int, calibration,
                  face_detector="yunet"):
    """``precision="int8"`` runs the QDQ graph calibrated on ``calibration``; ``"int8-nncf"`` the
    OpenVINO int8 model shipped beside the weights (what the default path runs when there is one)."""
    if precision == "int8-nncf":
        precision, calibration = "int8", None
    kwargs = dict(device="cpu", backend=backend, precision=precision, threads=threads, batch_size=8,
                  calibration=calibration if precision == "int8" else None, face_detector=face_detector)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 emulation: the table says so
        if weights is None:
            return Detector.from_config(config, **kwargs)
        return Detector(weights, **kwargs)


def load_nme(config: str, weights_sha: str, args) -> dict:
    """Variant label -> common-set NME of a config's shipped weights (their JSON when its sha256
    matches, else `precision_nme.py` runs now and writes it)."""
    if args.quick or args.no_nme:
        return {}
    path = default_json(WEIGHTS[config])
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("weights_sha256") == weights_sha:
            return {r["variant"]: r["nme"] for r in data["rows"]}
    if not Path(args.data).is_dir():
        print(f"no NME: {path} is missing or for other weights, and --data {args.data} does not exist")
        return {}
    result = evaluate_precisions(WEIGHTS[config], args.data, path, threads=args.threads)
    return {r["variant"]: r["nme"] for r in result["rows"]}


def tracked_ms_per_frame(det: Detector, frame: np.ndarray, repeats: int) -> float:
    """Mean ms per frame of `FaceTracker` over runs of TRACK_REDETECT frames (one detector call each)."""
    def clip():
        tracker = FaceTracker(det, fps=30.0, redetect_every=TRACK_REDETECT)
        for i in range(TRACK_REDETECT):
            tracker.update(frame, t=i / 30.0)

    return median_ms(clip, max(2, repeats // 3)) / TRACK_REDETECT


def fan_row(repeats: int, threads: int) -> dict | None:
    try:
        from face_alignment.models import FAN
    except ImportError:
        return None
    torch.manual_seed(0)
    net = FAN(4).eval()
    gflops = count_gflops(net, 256)
    x1, x8 = torch.randn(1, 3, 256, 256), torch.randn(8, 3, 256, 256)
    with torch.inference_mode():
        b1 = median_ms(lambda: net(x1), repeats)
        b8 = median_ms(lambda: net(x8), repeats) / 8
    return {"what": "FAN network (face-alignment, 4 stacks, random weights)", "gflops": round(gflops, 2),
            "ms_b1": round(b1, 2), "ms_b8": round(b8, 2), "gflops_per_s": round(gflops / b8 * 1000, 1)}


def dlib_row(image: np.ndarray, box: np.ndarray, repeats: int) -> dict | None:
    try:
        from facelandmarks_smt.training.evaluate import DlibBaseline

        dl = DlibBaseline()
    except (ImportError, OSError, RuntimeError):
        return None
    return {"what": "dlib 68-point predictor (given box)",
            "ms_b1": round(median_ms(lambda: dl.detect(image, boxes=np.array([box])), repeats), 2)}


def gpu_row(config: str, weights: str | None) -> dict | None:
    if not torch.cuda.is_available():
        return None
    det = Detector.from_config(config, device="cuda") if weights is None else Detector(weights, device="cuda")
    x = torch.rand(256, 3, det.config.input_size, det.config.input_size, device="cuda")
    model = det.model.to(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(x.contiguous(memory_format=torch.channels_last))
        torch.cuda.synchronize()

    ms = median_ms(run, 10)
    return {"what": f"{config}: GPU {torch.cuda.get_device_name()} bf16, batch 256", "faces_per_s": round(256 / ms * 1000)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["small", "tiny"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="intra-op threads (torch, ORT, OpenVINO)")
    p.add_argument("--data", default=DEFAULT_DATA, help="folder holding 300w/ (int8 calibration, NME)")
    p.add_argument("--no-nme", action="store_true", help="leave the NME column empty")
    p.add_argument("--quick", action="store_true", help="2 repeats, tiny only, no NME: checks the script works")
    p.add_argument("--json", default=str(REPO / "docs" / "results" / "inference_speed.json"))
    args = p.parse_args()
    if args.quick:
        args.repeats, args.configs = 2, ["tiny"]
        if args.json == p.get_default("json"):
            args.json = None  # a quick check does not overwrite the recorded results

    image = load_image(REPO / "examples" / "astronaut.jpg")
    probe = Detector.from_config("tiny", device="cpu")
    crops1 = probe.crop(image, [BOX])[0]
    crops8 = probe.crop(image, BOX + np.random.default_rng(0).uniform(-6, 6, (8, 4)))[0]
    if Path(args.data).is_dir() and not args.quick:
        calibration = training_folders(args.data)
    else:  # timing only: int8 accuracy needs calibration on real training faces
        calibration = probe.crop(image, BOX + np.random.default_rng(1).uniform(-10, 10, (8 if args.quick else 32, 4)))[0]
    nme = {}
    for config in args.configs:
        _, sha = weights_for(config)
        nme[config] = load_nme(config, sha, args) if sha else {}

    rows, best_b1, skipped = [], {}, []
    variants = VARIANTS
    if _openvino_version() == "not installed":
        variants = [v for v in VARIANTS if v[0] != "openvino"]
        skipped.append("openvino rows skipped: openvino is not installed (pip install 'facelandmarks_smt[openvino]')")
        print(skipped[-1], flush=True)
    elif not openvino_bf16_native():
        variants = [v for v in variants if v != ("openvino", "bf16")]
        skipped.append("openvino bf16 row skipped: this CPU has no native bf16, where OpenVINO refuses bf16")
        print(skipped[-1], flush=True)
    for config in args.configs:
        weights, _ = weights_for(config)
        gflops = None
        for backend, precision in variants:
            if precision == "int8-nncf" and (not weights or shipped_openvino_int8(sha256_file(weights)) is None):
                continue  # these weights ship no OpenVINO int8 model
            t = time.perf_counter()
            det = make_detector(config, weights, backend, precision, args.threads, calibration)
            setup_s = time.perf_counter() - t
            if gflops is None:
                gflops = count_gflops(det.model, det.config.input_size)
            b1 = median_ms(lambda: det.predict_crops(crops1), args.repeats)
            b8 = median_ms(lambda: det.predict_crops(crops8), args.repeats) / 8
            row = {"config": config, "weights": Path(weights).name if weights else "random", "backend": backend,
                   "precision": precision, "gflops": round(gflops, 2), "ms_b1": round(b1, 2), "ms_b8": round(b8, 2),
                   "gflops_per_s_b1": round(gflops / b1 * 1000, 1), "gflops_per_s_b8": round(gflops / b8 * 1000, 1),
                   "setup_s": round(setup_s, 1),
                   "nme": nme[config].get(NME_LABELS[(backend, precision)])}
            if precision == "bf16" and not cpu_has_native_bf16():
                row["note"] = "bf16 emulated (no AVX-512 BF16 / AMX on this CPU)"
            rows.append(row)
            print(f"{config:6} {backend:12} {precision:5} b1 {b1:8.2f} ms  b8 {b8:8.2f} ms/face", flush=True)
            if config not in best_b1 or b1 < best_b1[config][0]:
                best_b1[config] = (b1, backend, precision)

    frame, frame_box = frame_640x480()
    extra = []
    # the whole-image and video rows run the default path (backend and precision "auto": what a
    # user gets), and the video row also the fastest batch-1 path of the table when that differs
    cpu = torch.device("cpu")

    def default_path(config: str) -> tuple[str, str]:
        """What Detector(backend="auto", precision="auto") takes for this config's weights here."""
        sha = weights_for(config)[1]
        path = resolve_path(AUTO, AUTO, cpu, int8_ready=auto_int8_ready(cpu, sha))
        if path == ("openvino", "int8") and sha and shipped_openvino_int8(sha) is not None:
            return "openvino", "int8-nncf"  # the shipped OpenVINO int8 model runs then
        return path

    for config in args.configs:
        weights, _ = weights_for(config)
        backend, precision = default_path(config)
        det = make_detector(config, weights, backend, precision, args.threads, calibration)
        faces = det.detect(frame)
        extra.append({"what": f"pipeline, 640x480 frame, {len(faces)} face(s): default face detector + {config} "
                              f"{backend} {precision}",
                      "ms_b1": round(median_ms(lambda: det.detect(frame), args.repeats), 2)})
    extra.append({"what": "  of which the default face detector alone",
                  "ms_b1": round(median_ms(lambda: det.face_detector.detect(frame), args.repeats), 2)})
    # Video: the face detector on a 320 px copy, and tracking (the detector every 30th frame,
    # the other frames' boxes from the previous landmarks, One Euro smoothing): time per frame.
    yunet320 = get_face_detector("yunet", max_side=VIDEO_MAX_SIDE)
    extra.append({"what": f"  face detector at max_side={VIDEO_MAX_SIDE}",
                  "ms_b1": round(median_ms(lambda: yunet320.detect(frame), args.repeats), 2)})
    for config in args.configs:
        weights, _ = weights_for(config)
        default = default_path(config)
        paths = [default] + ([best_b1[config][1:]] if best_b1[config][1:] != default else [])
        for i, (backend, precision) in enumerate(paths):
            det = make_detector(config, weights, backend, precision, args.threads, calibration,
                                face_detector=yunet320)
            if i == 0:
                n_faces = len(det.detect(frame))
                extra.append({"what": f"pipeline, same frame, {n_faces} face(s): face detector at "
                                      f"max_side={VIDEO_MAX_SIDE} + {config} {backend} {precision}",
                              "ms_b1": round(median_ms(lambda: det.detect(frame), args.repeats), 2)})
            label = "the default path" if i == 0 else "the fastest batch-1 path"
            extra.append({"what": f"video, tracked (detector every {TRACK_REDETECT} frames, max_side={VIDEO_MAX_SIDE}) "
                                  f"+ {config} {backend} {precision} ({label}): per frame",
                          "ms_b1": round(tracked_ms_per_frame(det, frame, args.repeats), 2)})
            if i == 0 and backend in GRAPH_BACKENDS:
                # as the CLI runs it: torch at one thread around the runtime's call (its OpenMP
                # workers would spin on the runtime's cores; cli.detect.quiet_torch_around_graph_runtime)
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    ms = tracked_ms_per_frame(det, frame, args.repeats)
                finally:
                    torch.set_num_threads(threads)
                extra.append({"what": "  the same with torch at one thread (as the CLI runs it): per frame",
                              "ms_b1": round(ms, 2)})
    for row in (dlib_row(frame, frame_box, args.repeats), fan_row(args.repeats, args.threads),
                *(gpu_row(c, weights_for(c)[0]) for c in args.configs)):
        if row is not None:
            extra.append(row)

    header = (f"machine: {cpu_name()}, native bf16: {cpu_has_native_bf16()}, {args.threads} threads, "
              f"torch {torch.__version__}, onnxruntime {_ort_version()}, openvino {_openvino_version()}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, median of {args.repeats}")
    print("\n" + header + "\n")
    print("| config | weights | backend | precision | GFLOPs/face | ms/face b1 | ms/face b8 | GFLOP/s b1 | "
          "GFLOP/s b8 | common NME % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        nme_s = f"{r['nme']:.3f}" if r["nme"] is not None else "-"
        note = " *" if "note" in r else ""
        print(f"| {r['config']} | {r['weights']} | {r['backend']} | {r['precision']}{note} | {r['gflops']:.2f} | "
              f"{r['ms_b1']:.2f} | {r['ms_b8']:.2f} | {r['gflops_per_s_b1']:.0f} | {r['gflops_per_s_b8']:.0f} | "
              f"{nme_s} |")
    if any("note" in r for r in rows):
        print("\n\\* bf16 is emulated on this CPU (no AVX-512 BF16 / AMX): slower than fp32 here.")
    for note in skipped:
        print(f"\n{note}.")
    ref = next((r for r in rows if r["config"] == "small" and r["precision"] == "fp32" and r["backend"] == "torch"),
               rows[0])
    print("\n| what | ms/face b1 | ms/face b8 | vs " + f"{ref['config']} torch fp32 (b1) |")
    print("|---|---|---|---|")
    for r in extra:
        if "faces_per_s" in r:
            print(f"| {r['what']} | - | {r['faces_per_s']} faces/s | - |")
            continue
        ratio = f"{r['ms_b1'] / ref['ms_b1']:.2f}x time"
        if "gflops" in r:
            ratio += f"; {r['gflops'] / ref['gflops']:.1f}x FLOPs"
        print(f"| {r['what']} | {r['ms_b1']:.2f} | {r.get('ms_b8', '-')} | {ratio} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows, "extra": extra, "skipped": skipped},
                                              indent=2))
        print(f"\nwrote {args.json}")


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "not installed"


def openvino_bf16_native() -> bool:
    from facelandmarks_smt.runtime.openvino_backend import openvino_has_bf16

    return cpu_has_native_bf16() and openvino_has_bf16()


def _openvino_version() -> str:
    try:
        import openvino

        return openvino.__version__.split("-")[0]
    except ImportError:
        return "not installed"


if __name__ == "__main__":
    main()
