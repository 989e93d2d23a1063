"""MediaPipe's face mesh as a 68-point peer: accuracy on the 300-W common set and ms/face.

    pip install ai-edge-litert            # or: pip install -e ".[benchmarks]"
    python benchmarks/mediapipe_peer.py [--model /work/shared/models/mediapipe_face_mesh/face_landmark.tflite]
                                        [--data /work/shared/data/landmarks68] [--threads 1]
                                        [--json docs/results/mediapipe_peer.json]
                                        [--map docs/results/mediapipe_peer_map.npz] [--quick]

The network (`face_landmark.tflite` of github.com/google-ai-edge/mediapipe, Apache-2.0) takes a
192x192 RGB crop in [0, 1] and returns 468 mesh points (x, y, z) in the crop's pixels. Per face:

1. a square crop 1.5x the ground-truth landmark box (its longer side), centred on the box;
2. a second crop, same centre and size, rotated so the eye line of the first pass's mesh is level
   (MediaPipe's own graph rotates its crops the same way); the mesh of this pass is the one used;
3. a ridge regression map (lambda 1e-3, unpenalised intercept) from the 468 (x, y) mesh points to
   the 68 iBUG points, both in the rotated crop's coordinates divided by 192, fitted on the 300-W
   training faces only (afw, helen/trainset, lfpw/trainset: 2,012 faces with .pts here; never a
   test face);
4. the mapped points back to the image, scored with the package's own metrics (NME inter-ocular,
   median, FR@8) on the common set (helen/testset + lfpw/testset, 554 faces).

ms/face: the network alone (one invoke, median of repeated calls on real crops) and the whole
per-face path (two warps, two invokes, the map), at each of ``--time-threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from facelandmarks_smt.training.datasets import three_hundred_w
from facelandmarks_smt.training.metrics import landmark_boxes, summarise

from machine import cpu_name  # benchmarks/machine.py (scripts run from this folder)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = os.environ.get("FACELANDMARKS_SMT_DATA", "/work/shared/data/landmarks68")
DEFAULT_MODEL = "/work/shared/models/mediapipe_face_mesh/face_landmark.tflite"
RESULTS = REPO / "docs" / "results"

SIZE = 192          # the network's input side
CROP_SCALE = 1.5    # crop side / longer side of the landmark box
LAMBDA = 1e-3       # ridge penalty (features and targets in crop px / 192)
# Mesh eye corners (MediaPipe's canonical indices): image-left eye 33 (outer) and 133 (inner),
# image-right eye 263 (outer) and 362 (inner).
LEFT_EYE, RIGHT_EYE = (33, 133), (263, 362)


class FaceMesh:
    """The tflite face mesh under ai-edge-litert's interpreter."""

    def __init__(self, model: str, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=model, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.mesh_output = outputs["conv2d_21"]

    def __call__(self, crop_rgb_uint8: np.ndarray) -> np.ndarray:
        """(468, 2) mesh points in the crop's pixels."""
        x = crop_rgb_uint8.astype(np.float32)[None] * (1.0 / 255.0)
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.mesh_output).reshape(468, 3)[:, :2].copy()


def crop_affine(center: np.ndarray, side: float, angle: float = 0.0) -> np.ndarray:
    """2x3 affine from image pixels to a SIZE x SIZE crop of ``side`` image pixels around
    ``center``, rotated by ``-angle`` (radians) so that a line at ``angle`` becomes level."""
    s = SIZE / side
    c, si = np.cos(angle) * s, np.sin(angle) * s
    rot = np.array([[c, si], [-si, c]])
    t = np.array([SIZE / 2.0, SIZE / 2.0]) - rot @ center
    return np.hstack([rot, t[:, None]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m)


def eye_angle(mesh: np.ndarray) -> float:
    left = mesh[list(LEFT_EYE)].mean(axis=0)
    right = mesh[list(RIGHT_EYE)].mean(axis=0)
    d = right - left
    return float(np.arctan2(d[1], d[0]))


def mesh_face(net: FaceMesh, image: np.ndarray, gt: np.ndarray):
    """Two passes on one face: (mesh in the rotated crop's pixels, image -> crop affine)."""
    box = landmark_boxes(gt)[0]
    center = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
    side = CROP_SCALE * max(box[2] - box[0], box[3] - box[1])
    m1 = crop_affine(center, side)
    mesh1 = net(cv2.warpAffine(image, m1, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
    # the first crop is not rotated, so the eye line's angle in it is the angle in the image
    m2 = crop_affine(center, side, eye_angle(mesh1))
    mesh2 = net(cv2.warpAffine(image, m2, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
    return mesh2, m2


def run_set(net: FaceMesh, ds, label: str):
    """Meshes, affines and ground truth of every face of ``ds``."""
    meshes, affines, gts = [], [], []
    t0 = time.perf_counter()
    for i in range(len(ds)):
        image, gt, _ = ds[i]
        mesh, m = mesh_face(net, image, gt)
        meshes.append(mesh)
        affines.append(m)
        gts.append(gt)
        if (i + 1) % 500 == 0:
            print(f"  {label}: {i + 1}/{len(ds)} faces, {time.perf_counter() - t0:.0f} s", flush=True)
    return np.stack(meshes), np.stack(affines), np.stack(gts).astype(np.float64)


def crop_targets(gts: np.ndarray, affines: np.ndarray) -> np.ndarray:
    return np.stack([apply_affine(m, g) for m, g in zip(affines, gts)])


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float = LAMBDA):
    """``y ~ x @ w + b`` with an unpenalised intercept; x (N, F), y (N, T)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    return w, my - mx @ w


def features(meshes: np.ndarray) -> np.ndarray:
    return meshes.reshape(len(meshes), -1) / SIZE


def map_to_image(meshes: np.ndarray, affines: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    crop = (features(meshes) @ w + b).reshape(len(meshes), 68, 2) * SIZE
    return np.stack([apply_affine(invert_affine(m), p) for m, p in zip(affines, crop)])


def time_paths(model: str, threads: int, ds, w, b, repeats: int = 3, faces: int = 100) -> dict:
    """Median ms of the network alone and of the whole per-face path, on real faces."""
    net = FaceMesh(model, threads)
    samples = [ds[i] for i in range(min(faces, len(ds)))]
    crops = []
    for image, gt, _ in samples:
        _, m = mesh_face(net, image, gt)  # also warms up
        crops.append(cv2.warpAffine(image, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR))
    net_ms, path_ms = [], []
    for _ in range(repeats):
        for crop in crops:
            t0 = time.perf_counter()
            net(crop)
            net_ms.append(1e3 * (time.perf_counter() - t0))
        for image, gt, _ in samples:
            t0 = time.perf_counter()
            mesh, m = mesh_face(net, image, gt)
            map_to_image(mesh[None], m[None], w, b)
            path_ms.append(1e3 * (time.perf_counter() - t0))
    return {"threads": threads, "network_ms_median": round(statistics.median(net_ms), 3),
            "per_face_path_ms_median": round(statistics.median(path_ms), 3),
            "calls": len(net_ms)}


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="face_landmark.tflite")
    p.add_argument("--data", default=DEFAULT_DATA, help="folder holding 300w/ (or the 300-W root)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for the accuracy pass")
    p.add_argument("--time-threads", type=int, nargs="*", default=[1, 2], help="thread counts to time")
    p.add_argument("--json", default=str(RESULTS / "mediapipe_peer.json"), help="results JSON ('' to skip)")
    p.add_argument("--map", default=str(RESULTS / "mediapipe_peer_map.npz"),
                   help="where to save the fitted 468 -> 68 map ('' to skip)")
    p.add_argument("--cache", help="npz of the meshes (reused if it exists, written otherwise)")
    p.add_argument("--quick", action="store_true", help="40 training and 20 test faces, nothing written")
    args = p.parse_args(argv)

    import ai_edge_litert

    load_start = loadavg()
    train, test = three_hundred_w(args.data, "train"), three_hundred_w(args.data, "common")
    if args.quick:
        train, test = train.subset(range(0, len(train), len(train) // 40)), test.subset(range(20))
        args.json = args.map = ""
    print(f"{len(train)} training faces, {len(test)} common-set faces", flush=True)

    if args.cache and Path(args.cache).is_file():
        z = np.load(args.cache)
        tr, te = (z["train_mesh"], z["train_affine"], z["train_gt"]), (z["test_mesh"], z["test_affine"], z["test_gt"])
        accuracy_seconds = None
    else:
        net = FaceMesh(args.model, args.threads)
        t0 = time.perf_counter()
        tr = run_set(net, train, "train")
        te = run_set(net, test, "common")
        accuracy_seconds = time.perf_counter() - t0
        if args.cache:
            np.savez(args.cache, train_mesh=tr[0], train_affine=tr[1], train_gt=tr[2],
                     test_mesh=te[0], test_affine=te[1], test_gt=te[2])

    w, b = fit_ridge(features(tr[0]), (crop_targets(tr[2], tr[1]) / SIZE).reshape(len(tr[0]), -1))
    pred_train = map_to_image(tr[0], tr[1], w, b)
    pred = map_to_image(te[0], te[1], w, b)
    scores = summarise(pred, te[2])
    train_scores = summarise(pred_train, tr[2])
    print(f"common set ({scores['faces']} faces): NME {scores['nme']:.3f} %, median {scores['nmde']:.3f}, "
          f"FR@8 {scores['fr8']:.2f} % (training faces, fitted on: NME {train_scores['nme']:.3f})", flush=True)

    timings = [time_paths(args.model, t, test, w, b) for t in args.time_threads]
    for t in timings:
        print(f"{t['threads']} thread(s): network {t['network_ms_median']:.2f} ms/face, "
              f"whole path (2 warps + 2 passes + map) {t['per_face_path_ms_median']:.2f} ms/face", flush=True)

    result = {
        "model": {"file": Path(args.model).name, "source": "github.com/google-ai-edge/mediapipe "
                  "mediapipe/modules/face_landmark/face_landmark.tflite @33d683c", "licence": "Apache-2.0"},
        "protocol": {"crop": f"square, {CROP_SCALE}x the longer side of the ground-truth landmark box, "
                             f"{SIZE} px, RGB [0, 1]",
                     "passes": "second pass rotated so the first pass's mesh eye line (33,133 / 263,362) is level",
                     "map": f"ridge, lambda {LAMBDA}, unpenalised intercept, 936 mesh (x, y) -> 136, "
                            f"crop coordinates / {SIZE}",
                     "fitted_on": f"300-W training faces (afw, helen/trainset, lfpw/trainset), {len(train)} faces",
                     "scored_on": f"300-W common set (helen/testset + lfpw/testset), {len(test)} faces",
                     "metrics": "facelandmarks_smt.training.metrics.summarise (inter-ocular)"},
        "common_set": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()},
        "training_faces_fit": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in train_scores.items()},
        "speed": timings,
        "accuracy_pass_seconds": None if accuracy_seconds is None else round(accuracy_seconds, 1),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"), "numpy": np.__version__,
                    "opencv": cv2.__version__, "loadavg_start": load_start, "loadavg_end": loadavg()},
        "command": "python benchmarks/mediapipe_peer.py",
    }
    if args.map:
        np.savez_compressed(args.map, weights=w.astype(np.float32), bias=b.astype(np.float32),
                            note=np.array("pred68 = (mesh468_xy.reshape(-1) / 192) @ weights + bias, "
                                          "times 192, in the rotated crop's pixels"))
        result["map_file"] = os.path.relpath(args.map, REPO)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
