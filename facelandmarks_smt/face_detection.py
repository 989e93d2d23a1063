"""Whole-image face detection: find face boxes to crop before landmark regression.

The landmark model needs a box around each face in the *landmark-box* convention of
``docs/CONVENTIONS.md`` (tight box of the 68 landmarks, ``(x1, y1, x2, y2)`` in 0-based
pixel-centre coordinates). A face detector's own boxes follow its training data instead (the
Haar cascade's square covers brows to upper lip and misses the chin), so every detector here
returns boxes passed through a :class:`BoxAdapter` fitted on 300-W *training* faces
(``benchmarks/fit_face_box_adapter.py``, ``docs/face_detection.md``).

The bundled detector is OpenCV's frontal-face Haar cascade (Intel licence, see
``weights/LICENSE-opencv-haarcascade.txt``). OpenCV 5 dropped ``cv2.CascadeClassifier`` from
the main package, so :class:`HaarFaceDetector` carries a vectorised NumPy evaluator of the same
cascade that reproduces OpenCV 4's ``detectMultiScale`` (image pyramid, variance-normalised
Haar stumps, window grid and neighbour grouping); with OpenCV 4 installed it uses the C++
implementation, which is faster.

Other detectors plug in through :func:`register_face_detector` / :func:`get_face_detector`.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import cv2
import numpy as np

__all__ = [
    "FaceBoxes",
    "FaceDetector",
    "BoxAdapter",
    "HaarCascade",
    "HaarFaceDetector",
    "DEFAULT_HAAR_ADAPTER",
    "DATA_DIR",
    "HAAR_CASCADE_PATH",
    "HAAR_ADAPTER_PATH",
    "load_haar_adapter",
    "box_iou",
    "check_image",
    "register_face_detector",
    "get_face_detector",
    "available_face_detectors",
    "opencv_has_cascade_classifier",
]

#: Package data folder (installed with the package via ``[tool.setuptools.package-data]``).
DATA_DIR = Path(__file__).resolve().parent / "data"
#: OpenCV 4.x ``cv2/data/haarcascade_frontalface_default.xml``, unchanged.
HAAR_CASCADE_PATH = DATA_DIR / "haarcascade_frontalface_default.xml"
#: Adapter fitted by ``benchmarks/fit_face_box_adapter.py`` (values also in DEFAULT_HAAR_ADAPTER).
HAAR_ADAPTER_PATH = DATA_DIR / "haar_adapter.json"

PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------
# Results, validation, box helpers
# --------------------------------------------------------------------------------------------


class FaceBoxes(NamedTuple):
    """Detections of one image, largest face first.

    ``boxes``: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in the landmark-box convention (0-based
    pixel centres). ``scores``: ``(N,)`` float32, higher is more confident; only comparable
    between detections of the same detector. A tuple so ``boxes, scores = det.detect(img)``
    works.
    """

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> "FaceBoxes":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def check_image(image: Any) -> np.ndarray:
    """Validate an ``HxWx3`` uint8 RGB image; raise early with a message that says what to do."""
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a numpy.ndarray (HxWx3 uint8 RGB), got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise TypeError(
            f"image must have dtype uint8 (HxWx3 RGB, values 0..255), got {image.dtype}; "
            "convert e.g. with np.clip(img * 255, 0, 255).astype(np.uint8) for floats in 0..1"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must have shape (H, W, 3) RGB, got {image.shape}; for grayscale use "
            "np.repeat(gray[..., None], 3, axis=2), for RGBA drop the alpha channel"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image


def _as_boxes(boxes: Any, name: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) x1,y1,x2,y2, got {arr.shape}")
    return arr


def box_iou(a: Any, b: Any) -> np.ndarray:
    """Pairwise IoU ``(len(a), len(b))`` of ``x1,y1,x2,y2`` boxes (continuous areas)."""
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


# --------------------------------------------------------------------------------------------
# BoxAdapter
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoxAdapter:
    """Map a detector's raw box to the tight landmark box (why: detectors frame faces their own way).

    With raw centre ``(cx, cy)`` and size ``(w, h)``::

        cx' = cx + offset_x * w        w' = scale_x * w
        cy' = cy + offset_y * h        h' = scale_y * h

    Offsets are fractions of the *raw* size, so the map is the same at every face size.
    The identity is ``BoxAdapter()``.
    """

    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale_x", "scale_y", "offset_x", "offset_y"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"BoxAdapter.{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if self.scale_x <= 0 or self.scale_y <= 0:
            raise ValueError(
                f"BoxAdapter scales must be > 0, got scale_x={self.scale_x}, scale_y={self.scale_y}"
            )

    def apply(self, boxes: Any) -> np.ndarray:
        """Adapt ``(N, 4)`` (or one ``(4,)``) raw boxes; returns float32 of the same shape."""
        single = np.ndim(boxes) == 1
        b = _as_boxes(boxes)
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        cx = 0.5 * (b[:, 0] + b[:, 2]) + self.offset_x * w
        cy = 0.5 * (b[:, 1] + b[:, 3]) + self.offset_y * h
        hw = 0.5 * self.scale_x * w
        hh = 0.5 * self.scale_y * h
        out = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)
        return out[0] if single else out

    __call__ = apply

    def inverse(self) -> "BoxAdapter":
        """The adapter mapping adapted boxes back to raw ones (``w = w'/s``, ``c = c' - o*w``)."""
        return BoxAdapter(
            scale_x=1.0 / self.scale_x,
            scale_y=1.0 / self.scale_y,
            offset_x=-self.offset_x / self.scale_x,
            offset_y=-self.offset_y / self.scale_y,
        )

    @classmethod
    def fit(cls, raw_boxes: Any, landmark_boxes: Any, method: str = "median") -> "BoxAdapter":
        """Fit the adapter from matched pairs of raw detector boxes and landmark boxes.

        ``method="median"`` (default): per pair, ``scale = w_lm / w_raw`` and
        ``offset = (c_lm - c_raw) / w_raw``; take the median of each, so a few mismatched or
        badly annotated pairs cannot drag the fit. ``method="lstsq"``: least squares in pixels,
        ``scale = sum(w_lm w_raw) / sum(w_raw^2)`` and
        ``offset = sum((c_lm - c_raw) w_raw) / sum(w_raw^2)``, which weights big faces more.
        Both recover an exact synthetic relation exactly.
        """
        raw = _as_boxes(raw_boxes, "raw_boxes")
        lm = _as_boxes(landmark_boxes, "landmark_boxes")
        if raw.shape != lm.shape:
            raise ValueError(f"raw_boxes {raw.shape} and landmark_boxes {lm.shape} must pair up")
        if len(raw) == 0:
            raise ValueError("need at least one matched box pair to fit a BoxAdapter")
        rw, rh = raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]
        lw, lh = lm[:, 2] - lm[:, 0], lm[:, 3] - lm[:, 1]
        if np.any(rw <= 0) or np.any(rh <= 0):
            raise ValueError("raw boxes must have positive width and height")
        dcx = 0.5 * (lm[:, 0] + lm[:, 2]) - 0.5 * (raw[:, 0] + raw[:, 2])
        dcy = 0.5 * (lm[:, 1] + lm[:, 3]) - 0.5 * (raw[:, 1] + raw[:, 3])
        if method == "median":
            return cls(
                scale_x=float(np.median(lw / rw)),
                scale_y=float(np.median(lh / rh)),
                offset_x=float(np.median(dcx / rw)),
                offset_y=float(np.median(dcy / rh)),
            )
        if method == "lstsq":
            sw, sh = float(np.sum(rw * rw)), float(np.sum(rh * rh))
            return cls(
                scale_x=float(np.sum(lw * rw) / sw),
                scale_y=float(np.sum(lh * rh) / sh),
                offset_x=float(np.sum(dcx * rw) / sw),
                offset_y=float(np.sum(dcy * rh) / sh),
            )
        raise ValueError(f"unknown BoxAdapter.fit method {method!r}; use 'median' or 'lstsq'")

    def to_dict(self) -> Dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "BoxAdapter":
        """Build from ``to_dict()`` output (or a JSON file's ``"adapter"`` entry); extra keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown BoxAdapter keys {sorted(unknown)}; expected {sorted(names)}")
        return cls(**{k: float(v) for k, v in d.items()})


# Fitted by benchmarks/fit_face_box_adapter.py on the 300-W training folders (AFW, HELEN
# trainset, LFPW trainset) and stored in data/haar_adapter.json; see docs/face_detection.md.
# Kept here too so the detector works if the JSON is missing; a test checks both agree.
# 2,012 faces, 1,857 matched; detection rate 92.3 %, mean IoU with the landmark box 0.59 raw
# -> 0.78 adapted. The landmark box is ~15 % smaller and sits 0.15 box heights lower (chin in,
# forehead out).
DEFAULT_HAAR_ADAPTER = BoxAdapter(
    scale_x=0.8536, scale_y=0.8357, offset_x=0.0063, offset_y=0.1496,
)


def load_haar_adapter(path: Optional[PathLike] = None) -> BoxAdapter:
    """The fitted Haar adapter from ``haar_adapter.json`` (falls back to DEFAULT_HAAR_ADAPTER)."""
    p = Path(path) if path is not None else HAAR_ADAPTER_PATH
    if path is None and not p.is_file():
        return DEFAULT_HAAR_ADAPTER
    with open(p, "r", encoding="utf-8") as f:
        data = json.load(f)
    return BoxAdapter.from_dict(data["adapter"] if "adapter" in data else data)


# --------------------------------------------------------------------------------------------
# Detector interface and registry
# --------------------------------------------------------------------------------------------


class FaceDetector(abc.ABC):
    """Interface of whole-image face detectors: RGB image in, landmark-convention boxes out."""

    name: str = "face_detector"

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> FaceBoxes:
        """Detect faces in an ``HxWx3`` uint8 RGB image; boxes sorted largest first."""

    def __call__(self, image: np.ndarray) -> FaceBoxes:
        return self.detect(image)


_REGISTRY: Dict[str, Callable[..., FaceDetector]] = {}


def register_face_detector(
    name: str, factory: Callable[..., FaceDetector], overwrite: bool = False
) -> None:
    """Make ``get_face_detector(name, **kwargs)`` call ``factory(**kwargs)``."""
    key = name.lower()
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"face detector {name!r} is already registered (pass overwrite=True)")
    _REGISTRY[key] = factory


def available_face_detectors() -> List[str]:
    return sorted(_REGISTRY)


def get_face_detector(name: str = "haar", **kwargs: Any) -> FaceDetector:
    """Build a registered face detector by name (``"haar"`` is bundled and works offline)."""
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown face detector {name!r}; available: {available_face_detectors()}"
        )
    return _REGISTRY[key](**kwargs)


# --------------------------------------------------------------------------------------------
# Haar cascade (NumPy evaluator of OpenCV's stump-based HAAR cascades)
# --------------------------------------------------------------------------------------------


def opencv_has_cascade_classifier() -> bool:
    """True for OpenCV 4.x (and contrib builds); the OpenCV 5 main wheels have no cascades."""
    return hasattr(cv2, "CascadeClassifier")


class HaarCascade:
    """A stump-based Haar cascade in OpenCV's XML format, evaluated with NumPy.

    Why: OpenCV 5 wheels have no ``CascadeClassifier``; this keeps the bundled detector working
    with any OpenCV. It follows OpenCV 4's ``detectMultiScale``: windows of the cascade size
    on a pyramid of downscaled images (step 2 px below scale 2, else 1, skipping the next
    window after a stage-0 rejection), features normalised by the window's standard deviation
    over its inner ``(w-2) x (h-2)`` rectangle, and ``groupRectangles`` with ``eps=0.2``.
    """

    _THRESHOLD_EPS = 1e-5  # OpenCV subtracts this from every stage threshold

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Haar cascade file not found: {self.path}")
        root = ET.parse(str(self.path)).getroot()
        casc = root.find("cascade")
        if casc is None:
            raise ValueError(f"{self.path}: not an OpenCV 'opencv-cascade-classifier' XML")
        if (casc.findtext("stageType") or "").strip() != "BOOST" or (
            casc.findtext("featureType") or ""
        ).strip() != "HAAR":
            raise ValueError(f"{self.path}: only BOOST/HAAR cascades are supported")
        self.win_w = int(casc.findtext("width"))
        self.win_h = int(casc.findtext("height"))

        feats = casc.find("features")
        rects = np.zeros((len(feats), 3, 5), np.float64)  # x, y, w, h, weight
        for fi, feat in enumerate(feats):
            if int((feat.findtext("tilted") or "0").strip() or 0):
                raise ValueError(f"{self.path}: tilted Haar features are not supported")
            for ri, r in enumerate(feat.find("rects")):
                rects[fi, ri] = [float(v) for v in r.text.split()]
        self.rects = rects

        self.stages: List[Tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for st in casc.find("stages"):
            thr = float(st.findtext("stageThreshold")) - self._THRESHOLD_EPS
            fidx, fthr, left, right = [], [], [], []
            for wc in st.find("weakClassifiers"):
                nodes = wc.findtext("internalNodes").split()
                leaves = wc.findtext("leafValues").split()
                if len(nodes) != 4 or len(leaves) != 2:
                    raise ValueError(f"{self.path}: only stump (depth-1) cascades are supported")
                fidx.append(int(nodes[2]))
                fthr.append(float(nodes[3]))
                left.append(float(leaves[0]))
                right.append(float(leaves[1]))
            self.stages.append(
                (thr, np.array(fidx), np.array(fthr), np.array(left), np.array(right))
            )

    # -- evaluation ---------------------------------------------------------------------------
    # Arithmetic follows OpenCV 4's C++ code so results match it: exact integer rect sums,
    # float32 feature values (weights, sums and 1/std are floats there), double stage sums.

    def _stage_arrays(self, si: int):
        """Per-stage float32 rect data for vectorised evaluation (cached)."""
        cache = self.__dict__.setdefault("_stage_cache", {})
        if si not in cache:
            sthr, fidx, fthr, left, right = self.stages[si]
            r = self.rects[fidx]  # (S, 3, 5)
            x, y, w, h = (r[..., i].astype(np.int64) for i in range(4))
            wt = r[..., 4].astype(np.float32)
            cache[si] = (x, y, w, h, wt, fthr.astype(np.float32), left.astype(np.float32),
                         right.astype(np.float32), np.float32(sthr))
        return cache[si]

    def _eval_level(
        self, img: np.ndarray, step: int
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows of one pyramid level passing every stage: (xs, ys, last-stage sums)."""
        H, W = img.shape
        ww, wh = self.win_w, self.win_h
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        xs = np.arange(0, W - ww + 1, step)
        ys = np.arange(0, H - wh + 1, step)
        ny, nx = len(ys), len(xs)
        if nx == 0 or ny == 0:
            return empty
        # int32 integral images like OpenCV's: they may wrap around on big images, but every
        # window sum is far below 2**31, so the 4-corner differences are exact.
        ii = np.zeros((H + 1, W + 1), np.int32)
        ii[1:, 1:] = img.astype(np.int32).cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
        sq = np.zeros((H + 1, W + 1), np.int32)
        f = img.astype(np.int32)
        sq[1:, 1:] = (f * f).cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)

        def grid(a: np.ndarray, oy: int, ox: int) -> np.ndarray:
            return a[oy : oy + step * (ny - 1) + 1 : step, ox : ox + step * (nx - 1) + 1 : step]

        def rect_sum(a: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
            return grid(a, y + h, x + w) - grid(a, y, x + w) - grid(a, y + h, x) + grid(a, y, x)

        area = float((ww - 2) * (wh - 2))
        s = rect_sum(ii, 1, 1, ww - 2, wh - 2).astype(np.float64)
        q = rect_sum(sq, 1, 1, ww - 2, wh - 2).astype(np.uint32).astype(np.float64)
        nf = area * q - s * s
        pos = nf > 0
        inv_nf = np.ones((ny, nx), np.float32)
        inv_nf[pos] = (1.0 / np.sqrt(nf[pos])).astype(np.float32)
        # OpenCV rejects flat windows (std <= ~10 grey levels) before the first stage.
        valid = pos & (area * inv_nf.astype(np.float64) < 0.1)

        alive = valid.copy()
        last_sum = None
        n_stages = len(self.stages)
        base = None  # switch from the dense grid to gathered windows once few survive
        for si in range(n_stages):
            x, y, w, h, wt, fthr, left, right, sthr = self._stage_arrays(si)
            S = len(fthr)
            if base is None and (si == 0 or alive.mean() > self._dense_fraction):
                ssum = np.zeros((ny, nx), np.float64)
                for k in range(S):
                    v = None
                    for ri in range(3):
                        if wt[k, ri] == 0:
                            continue
                        rs = rect_sum(ii, x[k, ri], y[k, ri], w[k, ri], h[k, ri])
                        term = wt[k, ri] * rs.astype(np.float32)
                        v = term if v is None else v + term
                    v = v * inv_nf
                    ssum += np.where(v < fthr[k], left[k], right[k])
                passed = ssum >= sthr
                if si == 0:
                    # OpenCV skips the window right of one rejected at stage 0 (unless that
                    # one was itself skipped); emulate it so neighbour counts match.
                    # In a run of stage-0 rejections starting at column j0, the windows at
                    # j0+1, j0+3, ... are skipped (the ones in between are evaluated).
                    rej0 = valid & ~passed
                    cols = np.arange(nx)
                    starts = rej0 & ~np.pad(rej0, ((0, 0), (1, 0)))[:, :-1]
                    run_start = np.maximum.accumulate(np.where(starts, cols, -1), axis=1)
                    skip_next = rej0 & ((cols - run_start) % 2 == 0)
                    alive[:, 1:] &= ~skip_next[:, :-1]
                alive &= passed
                if si == n_stages - 1:
                    last_sum = ssum
                if not alive.any():
                    return empty
                continue
            if base is None:
                iy, ix = np.nonzero(alive)
                base = (ys[iy] * (W + 1) + xs[ix]).astype(np.int64)
                win_inv = inv_nf[iy, ix]
                wy, wx = ys[iy], xs[ix]
            row = W + 1
            # corner offsets (S, 3, 4) of D, B, C, A: sum = D - B - C + A
            off = np.stack(
                [(y + h) * row + x + w, y * row + x + w, (y + h) * row + x, y * row + x], -1
            ).reshape(-1)
            iif = ii.ravel()
            ssum = np.empty(len(base), np.float64)
            chunk = max(1, 2_000_000 // off.size)
            for c0 in range(0, len(base), chunk):
                b = base[c0 : c0 + chunk]
                g = iif[b[:, None] + off[None, :]].reshape(len(b), S, 3, 4)
                rs = (g[..., 0] - g[..., 1] - g[..., 2] + g[..., 3]).astype(np.float32)
                t = wt[None] * rs  # (n, S, 3) float32
                v = t[..., 0] + t[..., 1]
                v = np.where(wt[None, :, 2] != 0, v + t[..., 2], v)
                v = v * win_inv[c0 : c0 + chunk, None]
                ssum[c0 : c0 + chunk] = np.where(v < fthr, left, right).astype(np.float64).sum(1)
            keep = ssum >= sthr
            if si == n_stages - 1:
                last_sum = ssum[keep]
            base, win_inv, wy, wx = base[keep], win_inv[keep], wy[keep], wx[keep]
            if len(base) == 0:
                return empty
        if base is None:
            iy, ix = np.nonzero(alive)
            return xs[ix], ys[iy], last_sum[iy, ix]
        return wx, wy, last_sum

    def detect_raw(
        self,
        gray: np.ndarray,
        scale_factor: float = 1.1,
        min_size: int = 0,
        max_size: int = 0,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """All windows passing the cascade, before grouping: (rects x,y,w,h int, weights)."""
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        H, W = gray.shape
        max_w = max_size if max_size > 0 else W
        max_h = max_size if max_size > 0 else H
        # Scale list as OpenCV builds it: double factor for the size tests, float32 after.
        scales = []
        factor = 1.0
        while True:
            win_w = int(np.rint(self.win_w * factor))
            win_h = int(np.rint(self.win_h * factor))
            if win_w > max_w or win_h > max_h or win_w > W or win_h > H:
                break
            if win_w >= min_size and win_h >= min_size:
                scales.append(np.float32(factor))
            factor *= scale_factor
        rects, weights = [], []
        for sc in scales:
            sw = int(np.rint(np.float32(W) / sc))
            sh = int(np.rint(np.float32(H) / sc))
            win_w = int(np.rint(np.float32(self.win_w) * sc))
            win_h = int(np.rint(np.float32(self.win_h) * sc))
            img = gray if (sw, sh) == (W, H) else cv2.resize(
                gray, (sw, sh), interpolation=self._resize_interp
            )
            xs, ys, ws = self._eval_level(img, 1 if sc >= 2 else 2)
            if len(xs):
                r = np.empty((len(xs), 4), np.int64)
                r[:, 0] = np.rint(xs.astype(np.float32) * sc)
                r[:, 1] = np.rint(ys.astype(np.float32) * sc)
                r[:, 2] = win_w
                r[:, 3] = win_h
                rects.append(r)
                weights.append(ws)
        if not rects:
            return np.zeros((0, 4), np.int64), np.zeros(0)
        return np.concatenate(rects), np.concatenate(weights)

    _dense_fraction = 0.25  # evaluate stages on the whole grid while this share survives
    _resize_interp = cv2.INTER_LINEAR_EXACT  # bit-exact resize, as OpenCV 4.x cascades use

    @staticmethod
    def group_rectangles(
        rects: np.ndarray, weights: np.ndarray, min_neighbors: int, eps: float = 0.2
    ) -> Tuple[np.ndarray, np.ndarray]:
        """OpenCV's ``groupRectangles``: cluster similar windows, average, keep clusters with
        more than ``min_neighbors`` members, drop small boxes inside bigger stronger ones.
        Score of a cluster: its best last-stage sum (OpenCV's ``levelWeights``)."""
        n = len(rects)
        if n == 0:
            return np.zeros((0, 4), np.int64), np.zeros(0)
        if min_neighbors <= 0:
            return rects.copy(), weights.copy()
        x, y, w, h = (rects[:, i].astype(np.float64) for i in range(4))
        delta = eps * (np.minimum(w[:, None], w[None]) + np.minimum(h[:, None], h[None])) * 0.5
        sim = (
            (np.abs(x[:, None] - x[None]) <= delta)
            & (np.abs(y[:, None] - y[None]) <= delta)
            & (np.abs((x + w)[:, None] - (x + w)[None]) <= delta)
            & (np.abs((y + h)[:, None] - (y + h)[None]) <= delta)
        )
        parent = np.arange(n)

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in zip(*np.nonzero(np.triu(sim, 1))):
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[rj] = ri
        roots = np.array([find(i) for i in range(n)])
        _, labels = np.unique(roots, return_inverse=True)
        ncls = labels.max() + 1
        counts = np.bincount(labels, minlength=ncls)
        sums = np.zeros((ncls, 4), np.float64)
        np.add.at(sums, labels, rects.astype(np.float64))
        # OpenCV: saturate_cast<int>(sum * (1.f / n)), all in float32
        inv = (np.float32(1.0) / counts.astype(np.float32))[:, None]
        avg = np.rint(sums.astype(np.float32) * inv).astype(np.int64)
        best = np.full(ncls, -np.inf)
        np.maximum.at(best, labels, weights)

        out_r, out_w = [], []
        for i in range(ncls):
            n1 = counts[i]
            if n1 <= min_neighbors:
                continue
            r1 = avg[i]
            inside = False
            for j in range(ncls):
                n2 = counts[j]
                if j == i or n2 <= min_neighbors:
                    continue
                r2 = avg[j]
                dx, dy = int(round(r2[2] * eps)), int(round(r2[3] * eps))
                if (
                    r1[0] >= r2[0] - dx
                    and r1[1] >= r2[1] - dy
                    and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    and r1[1] + r1[3] <= r2[1] + r2[3] + dy
                    and (n2 > max(3, n1) or n1 < 3)
                ):
                    inside = True
                    break
            if not inside:
                out_r.append(r1)
                out_w.append(best[i])
        if not out_r:
            return np.zeros((0, 4), np.int64), np.zeros(0)
        return np.array(out_r, np.int64), np.array(out_w, np.float64)

    def detect_multiscale(
        self,
        gray: np.ndarray,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: int = 0,
        max_size: int = 0,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Like ``cv2.CascadeClassifier.detectMultiScale3(..., outputRejectLevels=True)``:
        grouped rects ``(N, 4)`` int ``x, y, w, h`` and their level weights ``(N,)``."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError("detect_multiscale expects a 2-D uint8 grayscale image")
        rects, weights = self.detect_raw(gray, scale_factor, min_size, max_size)
        return self.group_rectangles(rects, weights, min_neighbors)


# --------------------------------------------------------------------------------------------
# HaarFaceDetector
# --------------------------------------------------------------------------------------------


class HaarFaceDetector(FaceDetector):
    """Bundled offline face detector: OpenCV's frontal-face Haar cascade plus a fitted BoxAdapter.

    Frontal and near-frontal faces only (it misses profiles and strong tilts); good enough to
    start landmark tracking without any download. Raw cascade squares are expressed as the
    pixel area they cover, ``(x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5)`` in pixel-centre
    coordinates, then adapted to the landmark-box convention.

    Args:
        cascade_path: cascade XML; default the bundled ``haarcascade_frontalface_default.xml``.
        adapter: raw-box to landmark-box map; default the fitted one (``haar_adapter.json``).
            Pass ``BoxAdapter()`` for the raw cascade boxes.
        min_size: smallest raw face box in original-image pixels (cascade minimum is 24).
        max_size: largest raw face box in pixels; 0 means no limit.
        scale_factor: pyramid step; smaller finds more faces, slower.
        min_neighbors: a face needs more than this many overlapping windows (false-positive filter).
        max_side: images whose longer side exceeds this are detected on a downscaled copy
            (speed), boxes are mapped back; 0 disables.
        backend: ``"auto"`` (OpenCV's C++ cascade when this OpenCV has one, else NumPy),
            ``"opencv"`` or ``"numpy"``.
    """

    name = "haar"

    def __init__(
        self,
        cascade_path: Optional[PathLike] = None,
        adapter: Optional[BoxAdapter] = None,
        min_size: int = 32,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        max_size: int = 0,
        max_side: int = 800,
        backend: str = "auto",
    ):
        self.cascade_path = Path(cascade_path) if cascade_path is not None else HAAR_CASCADE_PATH
        if not self.cascade_path.is_file():
            raise FileNotFoundError(
                f"Haar cascade not found at {self.cascade_path}; the bundled copy lives in "
                f"{HAAR_CASCADE_PATH} (is the package data installed?)"
            )
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        self.adapter = adapter if adapter is not None else load_haar_adapter()
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.max_side = int(max_side)

        if backend not in ("auto", "opencv", "numpy"):
            raise ValueError(f"backend must be 'auto', 'opencv' or 'numpy', got {backend!r}")
        if backend == "opencv" and not opencv_has_cascade_classifier():
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no CascadeClassifier (removed in OpenCV 5); "
                "use backend='numpy' or 'auto'"
            )
        use_cv = backend == "opencv" or (backend == "auto" and opencv_has_cascade_classifier())
        self._cv_cascade = None
        self._np_cascade: Optional[HaarCascade] = None
        if use_cv:
            self._cv_cascade = cv2.CascadeClassifier(str(self.cascade_path))
            if self._cv_cascade.empty():
                raise ValueError(f"OpenCV could not load the cascade {self.cascade_path}")
            self.backend = "opencv"
        else:
            self._np_cascade = HaarCascade(self.cascade_path)
            self.backend = "numpy"

    def __repr__(self) -> str:
        return (
            f"HaarFaceDetector(backend={self.backend!r}, min_size={self.min_size}, "
            f"scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
            f"max_side={self.max_side}, adapter={self.adapter})"
        )

    def detect_raw(self, image: np.ndarray) -> FaceBoxes:
        """Unadapted cascade boxes (pixel-area convention), in original-image coordinates."""
        check_image(image)
        H, W = image.shape[:2]
        s = 1.0
        if self.max_side > 0 and max(H, W) > self.max_side:
            s = self.max_side / float(max(H, W))
            small = cv2.resize(
                np.ascontiguousarray(image),
                (max(1, int(round(W * s))), max(1, int(round(H * s)))),
                interpolation=cv2.INTER_AREA,
            )
        else:
            small = np.ascontiguousarray(image)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_size = int(math.ceil(self.min_size * s)) if self.min_size > 0 else 0
        max_size = int(math.floor(self.max_size * s)) if self.max_size > 0 else 0

        if self._cv_cascade is not None:
            if min(gray.shape) < 24:
                return FaceBoxes.empty()
            rects, _levels, weights = self._cv_cascade.detectMultiScale3(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                flags=0,
                minSize=(min_size, min_size),
                maxSize=(max_size, max_size),
                outputRejectLevels=True,
            )
            rects = np.asarray(rects, np.float64).reshape(-1, 4)
            weights = np.asarray(weights, np.float64).reshape(-1)
            if len(weights) != len(rects):
                weights = np.ones(len(rects))
        else:
            rects, weights = self._np_cascade.detect_multiscale(
                gray, self.scale_factor, self.min_neighbors, min_size, max_size
            )
            rects = rects.astype(np.float64)
        if len(rects) == 0:
            return FaceBoxes.empty()
        boxes = np.stack(
            [rects[:, 0] - 0.5, rects[:, 1] - 0.5,
             rects[:, 0] + rects[:, 2] - 0.5, rects[:, 1] + rects[:, 3] - 0.5], axis=1,
        )
        if s != 1.0:
            boxes = (boxes + 0.5) / s - 0.5  # pixel-centre map of a resize by s
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        return FaceBoxes(boxes[order].astype(np.float32), weights[order].astype(np.float32))

    def detect(self, image: np.ndarray) -> FaceBoxes:
        raw = self.detect_raw(image)
        if len(raw.boxes) == 0:
            return raw
        return FaceBoxes(self.adapter.apply(raw.boxes), raw.scores)


register_face_detector("haar", HaarFaceDetector)
