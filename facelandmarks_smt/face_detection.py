"""Whole-image face detection: find face boxes to crop before landmark regression.

The landmark model needs a box around each face in the *landmark-box* convention of
``docs/CONVENTIONS.md`` (tight box of the 68 landmarks, ``(x1, y1, x2, y2)`` in 0-based
pixel-centre coordinates). A face detector frames faces the way its training data did (YuNet's
WIDER FACE boxes include the forehead), so its boxes go through a :class:`BoxAdapter` fitted on
300-W *training* faces (``benchmarks/fit_face_box_adapter.py``, ``docs/face_detection.md``).

The bundled detector is YuNet (OpenCV Zoo, MIT, ``data/LICENSE-yunet.txt``), run by OpenCV's
``cv2.FaceDetectorYN``, or by OpenVINO with the same post-processing where openvino is installed
(`yunet_openvino`, about 3x faster). Its eye keypoints give each face's in-plane rotation (roll), so a tilted
head can be cropped upright. Other detectors plug in through :func:`register_face_detector`.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import cv2
import numpy as np

from .geometry import as_boxes, box_iou, roll_angle, upright_frame, upright_landmark_box

__all__ = [
    "FaceBoxes",
    "FaceDetector",
    "BoxAdapter",
    "YuNetFaceDetector",
    "DATA_DIR",
    "YUNET_MODEL_PATH",
    "YUNET_MODEL_SHA256",
    "YUNET_ADAPTER_PATH",
    "load_yunet_adapters",
    "load_yunet_roll_gain",
    "box_iou",
    "roll_angles",
    "upright_landmark_box",
    "check_image",
    "register_face_detector",
    "get_face_detector",
    "available_face_detectors",
]

#: Package data folder (installed with the package, ``[options.package_data]`` in setup.cfg).
DATA_DIR = Path(__file__).resolve().parent / "data"
#: OpenCV Zoo's YuNet, release 2026may, unchanged (provenance: ``data/README-yunet.md``).
YUNET_MODEL_PATH = DATA_DIR / "face_detection_yunet_2026may.onnx"
YUNET_MODEL_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
#: Box adapters fitted by ``benchmarks/fit_face_box_adapter.py`` on 300-W training folders.
YUNET_ADAPTER_PATH = DATA_DIR / "yunet_adapter.json"

PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------
# Results, validation, box helpers
# --------------------------------------------------------------------------------------------


class FaceBoxes(NamedTuple):
    """Detections of one image, highest score first.

    ``boxes``: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in the landmark-box convention (0-based
    pixel centres); when ``angles`` are non-zero each box is the landmark box in the face's
    upright frame, centred on the face (see :meth:`BoxAdapter.apply`). ``scores``: ``(N,)``
    float32, higher is more confident (YuNet: in [0, 1]). ``keypoints``: ``(N, 5, 2)`` float32
    (right eye, left eye, nose tip, right and left mouth corner, the subject's right on the
    image's left) or None. ``angles``: ``(N,)`` float32 degrees to rotate each crop by to make the
    face upright (``geometry.crop_matrix``'s ``angle``), or None for upright crops.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: Optional[np.ndarray] = None
    angles: Optional[np.ndarray] = None

    @classmethod
    def empty(cls) -> "FaceBoxes":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32))


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


def _as_angles(angles: Any, n: int) -> np.ndarray:
    if angles is None:
        return np.zeros(n)
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    if a.shape[0] != n:
        raise ValueError(f"need one angle per box: {a.shape[0]} angles for {n} boxes")
    return a


def roll_angles(keypoints: Any) -> np.ndarray:
    """In-plane rotation (degrees) of each face from its eye keypoints ``(N, >=2, 2)``.

    The angle of the line from the right eye (image left) to the left eye, in image
    coordinates (y down): positive when the face is turned clockwise on screen. Passed as
    ``crop_matrix(..., angle=roll)`` it makes the eye line horizontal in the crop.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 3 or k.shape[1] < 2 or k.shape[2] != 2:
        raise ValueError(f"keypoints must be (N, K>=2, 2) with both eyes first, got {k.shape}")
    return roll_angle(k[:, 0], k[:, 1])


# --------------------------------------------------------------------------------------------
# BoxAdapter
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoxAdapter:
    """Map a detector's raw box to the tight landmark box (why: detectors frame faces their own way).

    With raw centre ``c``, size ``(w, h)`` and the face's upright axes ``u`` (along the eye
    line) and ``v`` (down the face; ``(1, 0)`` and ``(0, 1)`` when no angle is given)::

        c' = c + offset_x * w * u + offset_y * h * v      w' = scale_x * w,  h' = scale_y * h

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

    def apply(self, boxes: Any, angles: Any = None) -> np.ndarray:
        """Adapt ``(N, 4)`` (or one ``(4,)``) raw boxes; returns float32 of the same shape.

        With ``angles`` (degrees, one per box) the offsets follow the rotated face and the result
        is the box in the face's upright frame, centred on the face, as ``crop_matrix`` with that
        angle expects.
        """
        single = np.ndim(boxes) == 1
        b = as_boxes(boxes)
        u, v = upright_frame(_as_angles(angles, len(b)))
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        c = 0.5 * (b[:, :2] + b[:, 2:])
        c = c + (self.offset_x * w)[:, None] * u + (self.offset_y * h)[:, None] * v
        half = 0.5 * np.stack([self.scale_x * w, self.scale_y * h], axis=1)
        out = np.concatenate([c - half, c + half], axis=1).astype(np.float32)
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
    def fit(cls, raw_boxes: Any, landmark_boxes: Any, method: str = "median",
            angles: Any = None) -> "BoxAdapter":
        """Fit the adapter from matched pairs of raw detector boxes and landmark boxes.

        ``method="median"`` (default): per pair, ``scale = w_lm / w_raw`` and
        ``offset = (c_lm - c_raw) / w_raw``; take the median of each, so a few mismatched or
        badly annotated pairs cannot drag the fit. ``method="lstsq"``: least squares in pixels,
        ``scale = sum(w_lm w_raw) / sum(w_raw^2)`` and
        ``offset = sum((c_lm - c_raw) w_raw) / sum(w_raw^2)``, which weights big faces more.
        With ``angles`` the centre offsets are measured along the face's upright axes (then
        ``landmark_boxes`` should come from :func:`upright_landmark_box`).
        Both recover an exact synthetic relation exactly.
        """
        raw = as_boxes(raw_boxes, "raw_boxes")
        lm = as_boxes(landmark_boxes, "landmark_boxes")
        if raw.shape != lm.shape:
            raise ValueError(f"raw_boxes {raw.shape} and landmark_boxes {lm.shape} must pair up")
        if len(raw) == 0:
            raise ValueError("need at least one matched box pair to fit a BoxAdapter")
        u, v = upright_frame(_as_angles(angles, len(raw)))
        rw, rh = raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]
        lw, lh = lm[:, 2] - lm[:, 0], lm[:, 3] - lm[:, 1]
        if np.any(rw <= 0) or np.any(rh <= 0):
            raise ValueError("raw boxes must have positive width and height")
        d = 0.5 * (lm[:, :2] + lm[:, 2:]) - 0.5 * (raw[:, :2] + raw[:, 2:])
        dcx, dcy = np.sum(d * u, axis=1), np.sum(d * v, axis=1)
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
        """Build from ``to_dict()`` output (or a JSON file's adapter entry); extra keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown BoxAdapter keys {sorted(unknown)}; expected {sorted(names)}")
        return cls(**{k: float(v) for k, v in d.items()})


def _load_adapter_json(path: Optional[PathLike]) -> Dict[str, Any]:
    p = Path(path) if path is not None else YUNET_ADAPTER_PATH
    if not p.is_file():
        raise FileNotFoundError(
            f"YuNet box adapter not found at {p}; it is package data of facelandmarks_smt "
            "(reinstall the package, or refit with benchmarks/fit_face_box_adapter.py)"
        )
    return json.loads(p.read_text(encoding="utf-8"))


def load_yunet_adapters(path: Optional[PathLike] = None) -> Dict[str, BoxAdapter]:
    """The fitted YuNet adapters ``{"axis": ..., "upright": ...}`` from ``yunet_adapter.json``.

    ``axis`` maps YuNet's box to the image-axis landmark box (no rotation); ``upright`` maps it
    to the landmark box in the face's upright frame (used with rotation correction).
    """
    data = _load_adapter_json(path)
    return {k: BoxAdapter.from_dict(data["adapters"][k]) for k in ("axis", "upright")}


def load_yunet_roll_gain(path: Optional[PathLike] = None) -> float:
    """Factor on the eye-line angle: YuNet's eye keypoints lean towards level, so the raw angle
    under-states a tilt (fitted on rotated training faces, ``yunet_adapter.json``)."""
    return float(_load_adapter_json(path)["roll_gain"])


# --------------------------------------------------------------------------------------------
# Detector interface and registry
# --------------------------------------------------------------------------------------------


class FaceDetector(abc.ABC):
    """Interface of whole-image face detectors: RGB image in, landmark-convention boxes out."""

    name: str = "face_detector"

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> FaceBoxes:
        """Detect faces in an ``HxWx3`` uint8 RGB image; highest score first."""

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


def get_face_detector(name: str = "yunet", **kwargs: Any) -> FaceDetector:
    """Build a registered face detector by name (``"yunet"`` is bundled and works offline)."""
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown face detector {name!r}; available: {available_face_detectors()}"
        )
    return _REGISTRY[key](**kwargs)


# --------------------------------------------------------------------------------------------
# YuNet
# --------------------------------------------------------------------------------------------

# OpenCV 5 logs a harmless "Targets are not supported by the new graph engine" warning on every
# FaceDetectorYN.create; creation is serialised by this lock while the log level is lowered.
_CREATE_LOCK = threading.Lock()


class YuNetFaceDetector(FaceDetector):
    """Bundled offline face detector: YuNet via ``cv2.FaceDetectorYN`` plus fitted box adapters.

    Each face's roll is ``roll_gain`` times the angle of the line between YuNet's eye keypoints.

    Finds frontal, turned and tilted faces from about 10 px up and returns 5 keypoints per face.
    ``cv2.FaceDetectorYN`` holds the input size as state, so each thread gets its own instance
    (``threading.local``): one detector object can be shared by many threads.

    Args:
        model_path: YuNet ONNX file; default the bundled one.
        score_threshold: detections below this YuNet score are dropped (NMS runs after it).
            ``Detector.detect(min_face_score=...)`` filters further; this is its floor.
        nms_threshold: boxes overlapping a better one by more IoU than this are suppressed.
        top_k: candidates kept before NMS.
        upright: return boxes for an upright crop and each face's roll angle (from the eyes),
            so a tilted head reaches the landmark model upright; False gives axis-aligned
            landmark boxes and zero angles.
        adapters: ``{"axis": BoxAdapter, "upright": BoxAdapter}``; default the fitted ones
            (``data/yunet_adapter.json``). ``BoxAdapter()`` for both gives raw YuNet boxes.
        roll_gain: the roll is this times the eye-line angle of YuNet's keypoints; default the
            fitted value (``data/yunet_adapter.json``).
        max_side: if set, images whose longer side exceeds it are searched on a copy shrunk to
            this size (area interpolation) and the boxes and keypoints scaled back: YuNet's cost
            grows with the pixel count, so 320 makes a 640x480 frame about 4x cheaper, at the
            price of faces under about 20 px at the reduced size. None: full resolution.
        runtime: what runs YuNet's network: ``"opencv"`` (``cv2.FaceDetectorYN``), ``"openvino"``
            (OpenVINO's CPU plugin with OpenCV's post-processing in numpy, `yunet_openvino`: the same
            faces, about 3x faster on a 640x480 frame; needs the optional openvino package) or
            ``"auto"`` (the default): openvino where it is installed, else opencv.
        threads: OpenVINO's inference threads (None: its choice); OpenCV's are process-wide
            (``cv2.setNumThreads``).
    """

    name = "yunet"

    def __init__(
        self,
        model_path: Optional[PathLike] = None,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        upright: bool = True,
        adapters: Optional[Dict[str, BoxAdapter]] = None,
        roll_gain: Optional[float] = None,
        max_side: Optional[int] = None,
        runtime: str = "auto",
        threads: Optional[int] = None,
    ):
        self.model_path = Path(model_path) if model_path is not None else YUNET_MODEL_PATH
        if not self.model_path.is_file():
            raise FileNotFoundError(
                f"YuNet model not found at {self.model_path}; the bundled copy lives in "
                f"{YUNET_MODEL_PATH} (is the package data installed?)"
            )
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if max_side is not None and not (isinstance(max_side, (int, np.integer)) and max_side >= 32):
            raise ValueError(f"max_side must be None or an int >= 32, got {max_side!r}")
        self.max_side = None if max_side is None else int(max_side)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.upright = bool(upright)
        self.adapters = dict(adapters) if adapters is not None else load_yunet_adapters()
        missing = {"axis", "upright"} - set(self.adapters)
        if missing:
            raise ValueError(f"adapters needs keys 'axis' and 'upright', missing {sorted(missing)}")
        self.roll_gain = float(roll_gain) if roll_gain is not None else load_yunet_roll_gain()
        if not 0.5 <= self.roll_gain <= 2.0:
            raise ValueError(f"roll_gain must be in [0.5, 2], got {self.roll_gain}")
        if runtime not in ("auto", "opencv", "openvino"):
            raise ValueError(f"runtime must be 'auto', 'opencv' or 'openvino', got {runtime!r}")
        if threads is not None and not (isinstance(threads, (int, np.integer)) and threads >= 1):
            raise ValueError(f"threads must be None or a positive int, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self._local = threading.local()
        self._openvino = None
        self.runtime = self._start_runtime(runtime)
        if self.runtime == "opencv":
            self._net((64, 64))  # fail here, not on the first image, if OpenCV cannot load the model

    def _start_runtime(self, runtime: str) -> str:
        """Build the OpenVINO network for ``"openvino"`` (or ``"auto"`` where openvino is installed)
        and return the runtime that runs; ``"auto"`` falls back to OpenCV, with a warning if
        OpenVINO is installed but fails to compile the model."""
        if runtime == "opencv":
            return "opencv"
        from .yunet_openvino import YuNetOpenVINO

        try:
            self._openvino = YuNetOpenVINO(self.model_path, self.threads)
        except ImportError:
            if runtime == "openvino":
                raise
            return "opencv"
        except Exception as e:  # noqa: BLE001 - any OpenVINO failure: auto keeps working with OpenCV
            if runtime == "openvino":
                raise
            import warnings

            warnings.warn(f"OpenVINO could not compile YuNet ({type(e).__name__}: {e}); running it with OpenCV",
                          RuntimeWarning, stacklevel=3)
            return "opencv"
        return "openvino"

    def __repr__(self) -> str:
        return (f"YuNetFaceDetector(score_threshold={self.score_threshold}, "
                f"nms_threshold={self.nms_threshold}, upright={self.upright}, max_side={self.max_side}, "
                f"runtime={self.runtime!r})")

    def __getstate__(self):  # picklable for process pools: the OpenCV and OpenVINO objects are rebuilt
        state = self.__dict__.copy()
        del state["_local"]
        state["_openvino"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()
        if self.runtime == "openvino":
            self._start_runtime("openvino")

    def _net(self, size):
        net = getattr(self._local, "net", None)
        if net is None:
            with _CREATE_LOCK:
                log = cv2.utils.logging
                old = log.getLogLevel()
                log.setLogLevel(log.LOG_LEVEL_ERROR)
                try:
                    net = cv2.FaceDetectorYN.create(
                        str(self.model_path), "", size, self.score_threshold,
                        self.nms_threshold, self.top_k)
                finally:
                    log.setLogLevel(old)
            self._local.net = net
        net.setInputSize(size)
        return net

    def detect_raw(self, image: np.ndarray) -> FaceBoxes:
        """YuNet's own boxes ``(x, y, x + w, y + h)``, scores and keypoints, highest score first."""
        check_image(image)
        h, w = image.shape[:2]
        scale = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if self._openvino is not None:  # takes RGB: the swap to BGR runs inside OpenVINO
            rows = self._openvino.detect(image, self.score_threshold, self.nms_threshold, self.top_k)
        else:
            bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
            _, rows = self._net((w, h)).detect(bgr)
        if rows is None or len(rows) == 0:
            return FaceBoxes.empty()
        rows = np.asarray(rows, np.float64).reshape(-1, 15)
        if scale != 1.0:  # boxes and keypoints back to the caller's pixels
            rows[:, :14] /= scale
        rows = rows[np.argsort(-rows[:, 14], kind="stable")]
        boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
        return FaceBoxes(boxes.astype(np.float32), rows[:, 14].astype(np.float32),
                         rows[:, 4:14].reshape(-1, 5, 2).astype(np.float32),
                         np.zeros(len(rows), np.float32))

    def detect(self, image: np.ndarray) -> FaceBoxes:
        raw = self.detect_raw(image)
        if len(raw.boxes) == 0:
            return raw
        if self.upright:
            angles = self.roll_gain * roll_angles(raw.keypoints)
            boxes = self.adapters["upright"].apply(raw.boxes, angles)
        else:
            angles = np.zeros(len(raw.boxes))
            boxes = self.adapters["axis"].apply(raw.boxes)
        return FaceBoxes(boxes, raw.scores, raw.keypoints, angles.astype(np.float32))


register_face_detector("yunet", YuNetFaceDetector)
