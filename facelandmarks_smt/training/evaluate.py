"""Score landmark predictions the way the paper does (section 5.2) and write a report.

``evaluate_predictions`` scores arrays you already have; ``evaluate_detector`` runs any object with
the library's ``detect(image, boxes) -> [Face]`` API over a dataset first.  Both write
``report.json`` (metrics, per-face errors, which boxes and normalisation were used) and ``ced.png``
(when matplotlib is installed; evaluation itself needs only the plain install) so that runs stay
comparable with each other and with the paper's tables.

``DlibBaseline`` wraps dlib's 68-point shape predictor behind the same API, as an optional
reference point (it needs ``pip install dlib-bin face-recognition-models``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .metrics import (
    INDICES_49,
    auc,
    ced_curve,
    landmark_boxes,
    nme,
    normalised_errors,
    summarise,
)

__all__ = [
    "evaluate_predictions",
    "evaluate_detector",
    "plot_ced",
    "DlibBaseline",
    "BaselineFace",
]

_BOXES_USED = ("gt", "detector")


# --------------------------------------------------------------------------------------------
# Reports and plots
# --------------------------------------------------------------------------------------------


def _finite_or_none(values) -> list:
    """JSON has no Infinity/NaN: write missing or non-finite errors as null."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
        else:
            f = float(v)
            out.append(f if math.isfinite(f) else None)
    return out


def _json_safe(obj):
    """Convert numpy scalars/arrays (and non-finite floats) so ``json.dump`` gives valid JSON."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def plot_ced(
    curves: Mapping[str, Any],
    path,
    threshold: float = 0.08,
    title: Optional[str] = None,
) -> None:
    """Plot one CED curve per named error array (e.g. ours and baselines) up to ``threshold``.

    Uses a bare ``matplotlib.figure.Figure`` (Agg canvas), so no pyplot state or global backend
    switch leaks into the caller.  Each legend entry shows AUC@threshold and NME in percent.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.subplots()
    pct = f"{threshold * 100:g}%"
    for name, errors in curves.items():
        e = np.asarray(errors, dtype=np.float64).ravel()
        e = e[~np.isnan(e)]
        if e.size == 0:
            continue
        x, y = ced_curve(e, threshold)
        label = f"{name} (AUC@{pct} {100 * auc(e, threshold):.2f}, NME {100 * nme(e):.2f}%)"
        ax.step(x, y, where="post", label=label)
    ax.set_xlim(0.0, threshold)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("Normalised point-to-point error")
    ax.set_ylabel("Fraction of faces")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")


def _write(report: dict, out_dir, curves: Mapping[str, Any], threshold: float) -> None:
    """``report.json`` always; ``ced.png`` when matplotlib is installed (the ``[training]`` extra),
    else one line on stderr says it was skipped: evaluation works on the plain install."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(_json_safe(report), f, indent=2, allow_nan=False)
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        print("note: ced.png skipped: matplotlib is not installed (pip install 'facelandmarks_smt[training]'); "
              f"the numbers are in {os.path.join(out_dir, 'report.json')}", file=sys.stderr)
        return
    plot_ced(curves, os.path.join(out_dir, "ced.png"), threshold, report.get("title"))


def evaluate_predictions(
    pred,
    gt,
    out_dir=None,
    title: str = "facelandmarks_smt evaluation",
    boxes_used: str = "gt",
    extra: Optional[Mapping[str, Any]] = None,
    *,
    norm: str = "inter-ocular",
    boxes=None,
    visible=None,
    eye_indices: Optional[Tuple[int, int]] = None,
    threshold: float = 0.08,
    ids: Optional[Sequence[Any]] = None,
    baselines: Optional[Mapping[str, Any]] = None,
) -> dict:
    """Score ``pred`` against ``gt`` (both ``(N, L, 2)``) and return the report dict.

    ``boxes_used`` records whether the predictions came from ground-truth landmark boxes (as in the
    paper) or from a face detector; it does not change the computation but must be reported.
    ``norm``/``boxes``/``visible``/``eye_indices`` are passed to
    :func:`~facelandmarks_smt.training.metrics.normalised_errors`.  ``baselines`` maps names to
    per-face error arrays drawn on the same CED plot.  With ``out_dir`` the report is written to
    ``out_dir/report.json`` and the plot to ``out_dir/ced.png``.  Metrics are in percent; the
    per-face ``errors`` lists are fractions.
    """
    if boxes_used not in _BOXES_USED:
        raise ValueError(f"boxes_used must be one of {_BOXES_USED}, got {boxes_used!r}")
    metrics = summarise(pred, gt, norm, boxes, visible, eye_indices, threshold)
    errors = normalised_errors(pred, gt, norm, boxes, None, visible, eye_indices)
    report = {
        "title": title,
        "boxes_used": boxes_used,
        "normalisation": norm,
        "threshold": float(threshold),
        "faces": int(errors.size),
        "metrics": metrics,
        "errors": _finite_or_none(errors),
    }
    if "nme49" in metrics:
        e49 = normalised_errors(pred, gt, norm, boxes, INDICES_49, visible, eye_indices)
        report["errors49"] = _finite_or_none(e49)
    if ids is not None:
        if len(ids) != errors.size:
            raise ValueError(f"ids has {len(ids)} entries for {errors.size} faces")
        report["ids"] = [str(i) for i in ids]
    if extra:
        report["extra"] = dict(extra)
    if out_dir is not None:
        curves = {title if len(title) <= 40 else "ours": errors}
        curves.update(baselines or {})
        _write(report, out_dir, curves, threshold)
    return report


# --------------------------------------------------------------------------------------------
# Running a detector over a dataset
# --------------------------------------------------------------------------------------------


def _meta_get(meta, key, default=None):
    if isinstance(meta, Mapping):
        return meta.get(key, default)
    return getattr(meta, key, default)


def _face_box(face) -> np.ndarray:
    """A face's box; falls back to its landmark box when the Face carries none."""
    box = getattr(face, "box", None)
    if box is None:
        return landmark_boxes(np.asarray(face.landmarks, dtype=np.float64))[0]
    return np.asarray(box, dtype=np.float64).reshape(4)


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _match(faces, gt_box, max_centre_dist) -> Optional[Any]:
    """The face whose box centre is nearest the gt landmark box centre, or None.

    A nearest face further than ``max_centre_dist * sqrt(w*h)`` of the gt box is rejected: in
    multi-face images it is somebody else, and scoring it would be a detection error disguised as
    a landmark error.
    """
    if not faces:
        return None
    c = _centre(gt_box)
    dists = [float(np.linalg.norm(_centre(_face_box(f)) - c)) for f in faces]
    best = int(np.argmin(dists))
    if max_centre_dist is not None:
        size = math.sqrt(max(gt_box[2] - gt_box[0], 0.0) * max(gt_box[3] - gt_box[1], 0.0))
        if dists[best] > max_centre_dist * size:
            return None
    return faces[best]


def evaluate_detector(
    detector,
    dataset: Iterable,
    boxes: str = "gt",
    out_dir=None,
    title: Optional[str] = None,
    *,
    norm: str = "inter-ocular",
    eye_indices: Optional[Tuple[int, int]] = None,
    threshold: float = 0.08,
    max_centre_dist: Optional[float] = 0.5,
    limit: Optional[int] = None,
    progress: bool = True,
    extra: Optional[Mapping[str, Any]] = None,
    baselines: Optional[Mapping[str, Any]] = None,
) -> dict:
    """Run ``detector`` over ``dataset`` and score it; returns the report dict.

    ``dataset`` yields ``(image, landmarks, meta)`` (one annotated face per item).  ``boxes="gt"``
    passes the tight ground-truth landmark box, the paper's protocol, so only the landmark model is
    measured.  ``boxes="detector"`` passes ``None`` and keeps the returned face whose box centre is
    nearest the gt box centre (see ``max_centre_dist``).

    Missed faces (no face returned, or no match) are not given an invented error: metrics are
    computed on the faces that were found, ``misses``/``miss_indices`` say which were not, and
    ``fr8_with_misses``/``auc8_with_misses`` count each miss as a failure (error = infinity) over
    all faces.  Per-face ``errors`` are aligned with the dataset order, ``null`` for misses.

    ``meta`` (a dict or object) may carry ``visible`` (L,) to drop unannotated points, ``box`` (a
    face box used when ``norm="box"``, e.g. AFLW's; otherwise the gt landmark box) and ``name`` or
    ``path`` for the report's ``ids``.  The detector API takes one image per call, so there is no
    batching here.
    """
    if boxes not in _BOXES_USED:
        raise ValueError(f"boxes must be one of {_BOXES_USED}, got {boxes!r}")
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a nicety, not a requirement
        def tqdm(it, **_):
            return it

    total = None
    if hasattr(dataset, "__len__"):
        total = len(dataset) if limit is None else min(len(dataset), limit)

    preds, gts, vis, norm_boxes, ids, found = [], [], [], [], [], []
    miss_indices = []
    have_visible = False
    for i, item in enumerate(tqdm(dataset, total=total, disable=not progress, desc="evaluate")):
        if limit is not None and i >= limit:
            break
        image, landmarks, meta = item
        gt = np.asarray(landmarks, dtype=np.float32)
        v = _meta_get(meta, "visible")
        v = np.ones(gt.shape[0], bool) if v is None else np.asarray(v, bool).reshape(gt.shape[0])
        have_visible |= not v.all()
        gt_box = landmark_boxes(gt, v)[0]
        if boxes == "gt":
            faces = detector.detect(image, boxes=gt_box[None].astype(np.float32))
            face = faces[0] if faces else None
        else:
            face = _match(detector.detect(image, boxes=None), gt_box, max_centre_dist)
        ids.append(_meta_get(meta, "name", _meta_get(meta, "path", i)))
        if face is None:
            miss_indices.append(i)
            found.append(False)
            continue
        p = np.asarray(face.landmarks, dtype=np.float32)
        if p.shape != gt.shape:
            raise ValueError(f"detector returned landmarks {p.shape} for ground truth {gt.shape}")
        nb = _meta_get(meta, "box") if norm == "box" else None
        preds.append(p)
        gts.append(gt)
        vis.append(v)
        norm_boxes.append(gt_box if nb is None else np.asarray(nb, np.float64).reshape(4))
        found.append(True)

    n_total = len(found)
    if n_total == 0:
        raise ValueError("the dataset yielded no faces")
    if title is None:
        title = f"{type(detector).__name__} ({boxes} boxes)"
    s = f"{threshold * 100:g}"
    meta_extra = dict(extra or {})
    if preds:
        report = evaluate_predictions(
            np.stack(preds), np.stack(gts), None, title, boxes, meta_extra or None,
            norm=norm, boxes=np.stack(norm_boxes) if norm == "box" else None,
            visible=np.stack(vis) if have_visible else None, eye_indices=eye_indices,
            threshold=threshold,
        )
        detected = np.asarray(report["errors"], dtype=np.float64)
    else:  # nothing found: still report honestly
        report = {"title": title, "boxes_used": boxes, "normalisation": norm,
                  "threshold": float(threshold), "faces": 0,
                  "metrics": {"faces": 0, "norm": norm}, "errors": []}
        if meta_extra:
            report["extra"] = meta_extra
        detected = np.zeros(0)

    # Re-align per-face lists with the dataset order, null for misses.
    def _align(values):
        it = iter(values)
        return [next(it) if ok else None for ok in found]

    report["errors"] = _align(report["errors"])
    if "errors49" in report:
        report["errors49"] = _align(report["errors49"])
    report["ids"] = [str(x) for x in ids]
    report["faces_total"] = n_total
    report["misses"] = len(miss_indices)
    report["miss_indices"] = miss_indices
    all_errors = np.concatenate([detected, np.full(len(miss_indices), np.inf)])
    report["metrics"][f"fr{s}_with_misses"] = 100.0 * float(np.mean(all_errors > threshold))
    report["metrics"][f"auc{s}_with_misses"] = 100.0 * auc(all_errors, threshold)
    report["metrics"]["misses"] = len(miss_indices)

    if out_dir is not None:
        name = title if len(title) <= 40 else "ours"
        if miss_indices:
            name += f" ({len(miss_indices)} misses excluded)"
        curves = {name: detected} if detected.size else {}
        curves.update(baselines or {})
        _write(report, out_dir, curves, threshold)
    return report


# --------------------------------------------------------------------------------------------
# Optional dlib baseline
# --------------------------------------------------------------------------------------------


@dataclass
class BaselineFace:
    """Minimal stand-in for the library's Face: what evaluation reads (box, landmarks, score)."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0


def _import_dlib():
    """``(dlib module, path of shape_predictor_68_face_landmarks.dat)``.

    The model file is found through the package's location, not by importing
    ``face_recognition_models``: its ``__init__`` needs ``pkg_resources``, which current setuptools
    no longer ships.
    """
    import importlib.util

    hint = "DlibBaseline needs dlib and its model files: pip install dlib-bin face-recognition-models"
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on optional packages
        raise ImportError(hint) from exc
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(hint)
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise ImportError(f"{hint} (no {path.name} in {path.parent})")
    return dlib, str(path)


class DlibBaseline:
    """dlib's ``shape_predictor_68_face_landmarks`` (ERT, 300-W trained) as a comparison baseline.

    ``detect(image, boxes)`` follows the library API.  With ``boxes`` the given boxes are passed
    straight to the shape predictor as ``dlib.rectangle``s; note dlib was trained on its own HOG
    detector's boxes (tighter and lower than a landmark box), so with gt landmark boxes it runs a
    little off its training convention, which this baseline deliberately does not correct.  With
    ``boxes=None`` dlib's frontal HOG detector finds the faces.
    """

    def __init__(self, predictor_path: Optional[str] = None, upsample: int = 1):
        dlib, default_path = _import_dlib()
        self._dlib = dlib
        path = predictor_path or default_path
        self._predictor = dlib.shape_predictor(path)
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)

    def detect(self, image, boxes=None):
        """Return a list of :class:`BaselineFace` with 68 float32 0-based landmarks each."""
        dlib = self._dlib
        img = np.ascontiguousarray(image, dtype=np.uint8)
        if boxes is None:
            dets, scores, _ = self._detector.run(img, self.upsample, 0.0)
            rects = list(dets)
        else:
            b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            rects = [dlib.rectangle(*(int(round(v)) for v in row)) for row in b]
            scores = [1.0] * len(rects)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(img, rect)
            # dlib part coordinates are integer pixel indices = 0-based pixel centres.
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
            faces.append(BaselineFace(box=box, landmarks=pts, score=float(score)))
        return faces
