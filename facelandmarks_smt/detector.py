"""The public API: `Detector` finds landmarks in images, `Face` holds one face's result."""

from __future__ import annotations

import copy
import os
import threading
import warnings
from typing import Sequence

import numpy as np
import torch

from . import hub
from .config import ModelConfig, get_config
from .geometry import crop_matrix, invert_affine, normalise_crops, normalise_unit_crops, transform_points, warp_crop
from .images import FaceInputWarning, check_boxes, load_image, warn_if_bgr
from .models import SMTNet
from .result import Face
from .runtime.backends import (AUTO, GRAPH_BACKENDS, auto_int8_possible, auto_int8_ready, fallback_path, make_runner,
                               resolve_path)
from .runtime.device import resolve_device
from .schemes import get_scheme, mirror_points, scheme_conversion
from .weights_io import load_model, sha256_file

__all__ = ["Detector", "Face", "resolve_device", "batch_size_for", "MEMORY_LIMIT_MB", "DEFAULT_MIN_FACE_SCORE"]

#: Default bound on the activation memory of one network call; `predict_crops` and `detect` run
#: faces in chunks that fit it.
MEMORY_LIMIT_MB = 512.0
MAX_BATCH = 32


def batch_size_for(config: ModelConfig, memory_limit_mb: float = MEMORY_LIMIT_MB) -> int:
    """Faces per network call that fit ``memory_limit_mb`` of fp32 activations. Measured peak
    (max RSS, batch 8, tiny and small): 13-17 feature maps of ``width x S/4 x S/4`` per face, so
    16 plus the input crop is the estimate; capped at `MAX_BATCH` (larger batches gain nothing on CPU)."""
    per_face = 4 * (16 * config.width * config.heatmap_size ** 2 + 3 * config.input_size ** 2)
    return int(max(1, min(MAX_BATCH, memory_limit_mb * 2 ** 20 // per_face)))


#: Default ``min_face_score`` of `Detector.detect` (YuNet scores are in [0, 1]). Measured with
#: benchmarks/fit_face_box_adapter.py: every annotated face scored at least 0.77 (2,012 300-W
#: training faces) and 0.87 (554 common-set faces); 0.6 leaves margin for harder photos and drops
#: the weakest of the other detections above YuNet's floor of 0.5 (220 -> 188 on the training
#: crops, some of them real unannotated faces). See docs/face_detection.md.
DEFAULT_MIN_FACE_SCORE = 0.6

_LAZY_LOCK = threading.Lock()

#: An ``(x, y, w, h)`` box read as ``(x1, y1, x2, y2)`` can look valid: with the face's ``w > x``
#: and ``h > y`` it is a smaller box inside the face. A caller's box is *ambiguous* when its other
#: reading ``(x1, y1, x1 + x2, y1 + y2)`` also fits the image, is about square, and is much larger
#: (the box is under `XYWH_SIZE_RATIO` of it on both sides). Such a box gets a `FaceInputWarning`
#: when the network finds a clearly more confident face in the other reading (mean landmark score
#: at least `CONFIDENT_SCORE` and `XYWH_SCORE_MARGIN` above the box's own): measured on the
#: sample photo, the right box scores 0.59 and its (x, y, w, h) misreadings 0.2-0.3.
XYWH_SIZE_RATIO = 0.6
CONFIDENT_SCORE = 0.3
XYWH_SCORE_MARGIN = 0.1
#: A box whose face already scores this much is taken as meant: no second look as (x, y, w, h)
#: (a right box of the sample photo scores about 0.6, a misread one 0.2-0.3), so the check costs
#: nothing on the hot path (tracked video, right boxes).
SURE_SCORE = 0.45


class Detector:
    """Facial landmarks with SMT-Net.

    >>> det = Detector("my-weights.safetensors")                    # or Detector.from_pretrained(name)
    >>> faces = det.detect("photo.jpg")                             # bundled face detector finds faces
    >>> faces = det.detect(image_rgb, boxes=[[x1, y1, x2, y2]])     # or give landmark boxes

    Speed options (the network call is the only thing they change; see `runtime.backends`):
    ``backend`` ``"auto"`` (default), ``"torch"``, ``"onnxruntime"`` (CPU; the graph is exported
    once and cached by the weights' sha256) or ``"openvino"`` (optional, ``pip install
    'facelandmarks_smt[openvino]'``: OpenVINO's CPU plugin on the same cached graphs, fp32 or int8,
    bf16 only on CPUs with native bf16); ``precision`` ``"auto"`` (default), ``"fp32"``,
    ``"bf16"`` (torch, CPUs with native bf16; elsewhere it warns once, being ~5x slower) or
    ``"int8"`` (onnxruntime, statically quantised on ``calibration`` folders of annotated
    training faces, or taken from the cache). ``"auto"`` picks the fastest path of this machine
    whose NME cost is <= 0.05 (`runtime.backends.auto_path`: on CPUs with native bf16 openvino bf16
    when openvino is installed, else torch bf16; elsewhere onnxruntime fp32 when installed, else
    torch fp32; torch fp32 on CUDA; never int8);
    ``backend`` and ``precision`` then hold the concrete choice; ``threads`` sets torch's (process-wide),
    onnxruntime's and OpenVINO's intra-op threads; ``batch_size`` faces per network call (None: as many as fit
    ``memory_limit_mb``); ``flip_test`` averages each face with its mirror image (2x the work).
    ``threads`` apply to this detector's own calls: the process-wide torch setting is given back
    after each call. An `SMTNet` passed as ``weights`` is copied, never changed.
    """

    def __init__(
        self,
        weights: str | os.PathLike | SMTNet,
        device: str = "auto",
        num_landmarks: int | None = None,
        face_detector: str | object = "yunet",
        batch_size: int | None = None,
        sha256: str | None = None,
        scheme: str | None = None,
        backend: str = AUTO,
        precision: str = AUTO,
        threads: int | None = None,
        flip_test: bool = False,
        calibration=None,
        memory_limit_mb: float = MEMORY_LIMIT_MB,
        correct_rotation: bool = True,
    ) -> None:
        """``scheme``: the landmark layout `detect` returns; None gives the model's own, and a
        68-point (300w-68) model can also give ``"aflw-19"`` (derived via `schemes.map_68_to_19`)."""
        self.device = resolve_device(device)
        self.metadata: dict[str, str] = {}
        if isinstance(weights, SMTNet):
            model = copy.deepcopy(weights)  # .to(device).eval() below must not change the caller's module
            if num_landmarks is not None and model.config.num_landmarks != num_landmarks:
                raise ValueError(f"model predicts {model.config.num_landmarks} landmarks, "
                                 f"but {num_landmarks} were asked for")
        elif isinstance(weights, (str, os.PathLike)):
            if str(weights).lower().endswith(".onnx"):
                raise ValueError(
                    f"{weights} is an ONNX graph, but Detector loads .safetensors weights files (the config and "
                    "crop settings travel in them): pass the weights file the graph was exported from with "
                    "backend='onnxruntime' (the graph is exported and cached for you), or run the .onnx with "
                    "onnxruntime yourself")
            model, self.metadata = load_model(weights, num_landmarks=num_landmarks, sha256=sha256)
        else:
            raise TypeError(f"weights must be a path to a .safetensors file or an SMTNet, got {type(weights).__name__}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (fit memory_limit_mb), got {batch_size}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        fully_auto = backend == AUTO and precision == AUTO
        from_file = isinstance(weights, (str, os.PathLike))
        if fully_auto and from_file and auto_int8_possible(self.device):  # hash the file only where int8 could run
            sha256 = sha256 or sha256_file(weights)
        int8_ready = fully_auto and from_file and auto_int8_ready(self.device, sha256)
        backend, precision = resolve_path(backend, precision, self.device, int8_ready)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size or batch_size_for(self.model.config, memory_limit_mb)
        self.backend, self.precision, self.threads, self.flip_test = backend, precision, threads, bool(flip_test)
        if self.flip_test and len(get_scheme(model.config.scheme).flip_permutation) != model.config.num_landmarks:
            raise ValueError(f"flip_test needs the flip permutation of scheme {model.config.scheme!r} for "
                             f"{model.config.num_landmarks} landmarks")
        if backend in GRAPH_BACKENDS and sha256 is None and isinstance(weights, (str, os.PathLike)):
            sha256 = sha256_file(weights)
        while True:
            try:
                self._runner = make_runner(self.model, self.backend, self.precision, threads, sha256, calibration)
                break
            except Exception as e:  # an automatic choice of an ONNX runtime must never make a working torch fail
                if not (fully_auto and self.backend in GRAPH_BACKENDS):
                    raise
                fallback = fallback_path(self.backend, self.precision)
                warnings.warn(f"backend='auto' chose {self.backend} {self.precision}, which failed to start here "
                              f"({type(e).__name__}: {e}); running {fallback[0]} {fallback[1]} instead",
                              RuntimeWarning, stacklevel=2)
                self.backend, self.precision = fallback
        self._face_detector_spec = face_detector
        self._face_detector = None
        self.scheme, self._conversion = self._output_scheme(scheme)
        self.correct_rotation = bool(correct_rotation)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> "Detector":
        """A detector from a registered pretrained name or a weights file path. A name is looked
        up locally (the package ships the small model) and otherwise downloaded from the Hugging
        Face Hub and sha256-checked (see `hub`)."""
        path, sha = hub.resolve(name_or_path)
        kwargs.setdefault("sha256", sha)
        return cls(path, **kwargs)

    @classmethod
    def from_config(cls, name: str | ModelConfig = "small", num_landmarks: int = 68, seed: int | None = 0,
                    **kwargs) -> "Detector":
        """A random-init detector of a named config: for tests, benchmarks and training starts.
        Its landmarks are meaningless until it is trained."""
        config = name if isinstance(name, ModelConfig) else get_config(name, num_landmarks=num_landmarks)
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = SMTNet(config)
        else:
            model = SMTNet(config)
        return cls(model, **kwargs)

    def _output_scheme(self, scheme: str | None):
        """``(scheme name, conversion or None)``: `schemes.scheme_conversion`, the one the CLI uses too."""
        native = self.config.scheme
        if scheme is None or scheme == native:
            return native, None
        conversion = scheme_conversion(self.num_landmarks, scheme, native)
        if conversion is not None:
            return conversion.name, conversion
        name = get_scheme(scheme).name
        if name == native:
            return native, None
        raise ValueError(f"scheme {scheme!r} cannot be given by this model, which predicts {native!r} "
                         f"({self.num_landmarks} points); a 68-point model can also give '300w-49' and 'aflw-19'")

    # -- properties ---------------------------------------------------------------------------
    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def num_landmarks(self) -> int:
        return self.config.num_landmarks

    @property
    def face_detector(self):
        """The whole-image face detector, built on first use. ``"yunet"`` by name gets
        ``upright=correct_rotation`` and this detector's ``threads``; a detector instance keeps its own settings."""
        if self._face_detector is None:
            with _LAZY_LOCK:
                if self._face_detector is None:
                    spec = self._face_detector_spec
                    if isinstance(spec, str):
                        from .face_detection import get_face_detector

                        kwargs = {"upright": self.correct_rotation, "threads": self.threads} \
                            if spec.lower() == "yunet" else {}
                        spec = get_face_detector(spec, **kwargs)
                    self._face_detector = spec
        return self._face_detector

    # -- inference ----------------------------------------------------------------------------
    def _to_input(self, crops) -> torch.Tensor:
        size = self.config.input_size
        if isinstance(crops, np.ndarray):
            if crops.dtype != np.uint8:
                raise TypeError(f"numpy crops must be uint8 NHWC, got dtype {crops.dtype}")
            if crops.ndim == 3:
                crops = crops[None]
            if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
                raise ValueError(f"numpy crops must be (N, {size}, {size}, 3) uint8, got shape {crops.shape}")
            if self.device.type == "cpu":  # numpy normalises: no torch threads woken (normalise_crops)
                return normalise_crops(crops, self.config.mean, self.config.std)
            return normalise_crops(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device),
                                   self.config.mean, self.config.std)
        if isinstance(crops, torch.Tensor):
            if crops.ndim == 3:
                crops = crops[None]
            if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, size, size):
                raise ValueError(f"torch crops must be (N, 3, {size}, {size}), got shape {tuple(crops.shape)}")
            if crops.dtype == torch.uint8:
                return normalise_crops(crops.to(self.device).permute(0, 2, 3, 1), self.config.mean, self.config.std)
            if not crops.is_floating_point():
                raise TypeError(f"torch crops must be float in [0, 1] or uint8, got {crops.dtype}")
            if not torch.isfinite(crops).all():
                raise ValueError("torch crops contain NaN or inf")
            if crops.numel() and (crops.min() < -1e-3 or crops.max() > 1.0 + 1e-3):
                raise ValueError("torch float crops must be RGB in [0, 1] (ToTensor convention); "
                                 f"got values in [{crops.min().item():.3g}, {crops.max().item():.3g}]")
            return normalise_unit_crops(crops.to(self.device), self.config.mean, self.config.std)
        raise TypeError(f"crops must be a numpy uint8 NHWC array or a torch NCHW tensor, got {type(crops).__name__}")

    @torch.inference_mode()
    def predict_crops(self, crops, return_scores: bool = False):
        """Landmarks of already-cropped faces, ``(N, L, 2)`` float32 numpy in crop pixels.

        ``crops``: numpy uint8 NHWC RGB, or torch NCHW (float RGB in [0, 1], or uint8), each
        ``input_size`` square and cropped with `geometry.crop_matrix` conventions.
        With ``return_scores`` also returns per-landmark confidences ``(N, L)``.
        Faces run through the network ``batch_size`` at a time (half that with ``flip_test``).
        """
        if not isinstance(crops, (np.ndarray, torch.Tensor)):
            self._to_input(crops)  # raises, naming the accepted types
        if crops.ndim == 3:
            crops = crops[None]
        self._to_input(crops[:0])  # checks shape and dtype once, before any work
        cfg = self.config
        step = max(1, self.batch_size // 2) if self.flip_test else self.batch_size
        coords, scores = [], []
        for i in range(0, len(crops), step):
            c, s = self._predict_normalised(self._to_input(crops[i:i + step]))
            coords.append(c)
            scores.append(s)
        if coords:
            pts, sc = np.concatenate(coords), np.concatenate(scores)
        else:
            pts = np.zeros((0, cfg.num_landmarks, 2), np.float32)
            sc = np.zeros((0, cfg.num_landmarks), np.float32)
        return (pts, sc) if return_scores else pts

    def _predict_normalised(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The one network call (any backend) and the shared decoding (`codec.HeatmapDecoder`), in crop pixels.

        ``flip_test`` runs the mirrored crops in the same call, maps their points back
        (``x -> (S - 1) - x``, then the scheme's flip permutation) and averages the *points* and
        scores: heatmaps are not averaged because each residual is an offset from its own argmax."""
        cfg = self.config
        n = x.shape[0]
        if self.flip_test:
            x = torch.cat([x, x.flip(-1)])
        pts, sc = self._runner.decoded(x)  # `codec.HeatmapDecoder`, inside the graph runtimes
        if self.flip_test:
            perm = list(get_scheme(cfg.scheme).flip_permutation)
            pts = 0.5 * (pts[:n] + mirror_points(pts[n:], cfg.input_size, perm))
            sc = 0.5 * (sc[:n] + sc[n:][:, perm])
        return pts.astype(np.float32), sc.astype(np.float32)

    def crop(self, image, boxes) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready crops ``(N, S, S, 3)`` uint8 and their affine matrices ``(N, 2, 3)``."""
        image = load_image(image)
        return self._crop_checked(image, check_boxes(boxes, image.shape))

    def _crop_checked(self, image: np.ndarray, boxes: np.ndarray,
                      angles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        angles = np.zeros(len(boxes)) if angles is None else angles
        mats = np.stack([crop_matrix(b, cfg.crop_factor, cfg.input_size, angle=float(a))
                         for b, a in zip(boxes, angles)]) if len(boxes) else np.zeros((0, 2, 3))
        crops = np.stack([warp_crop(image, m, cfg.input_size) for m in mats]) if len(boxes) \
            else np.zeros((0, cfg.input_size, cfg.input_size, 3), np.uint8)
        return crops, mats

    def detect(self, image, boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
               min_face_score: float = DEFAULT_MIN_FACE_SCORE, angles: Sequence[float] | None = None) -> list[Face]:
        """Landmarks of every face in ``image`` (path, PIL image or numpy HxW/HxWx3/HxWx4 uint8 RGB).

        ``boxes``: Nx4 ``x1, y1, x2, y2`` landmark boxes (the tight box around a face's
        landmarks), returned in the order given; without them the bundled face detector (YuNet)
        finds the faces, keeps those scoring at least ``min_face_score`` (default 0.6, see
        `DEFAULT_MIN_FACE_SCORE`; YuNet's own floor is 0.5) and returns them sorted by
        ``detection_score``, highest first. With ``correct_rotation`` each detected face is cropped
        upright using its eye keypoints. All faces go through the network in batches.
        ``angles`` (with ``boxes``): each face's roll in degrees, to crop it upright; its box is
        then the landmark box in that upright frame (`geometry.upright_landmark_box`), as the face
        detector's are (video tracking passes them). ``boxes=[]`` returns ``[]``.
        Suspicious input (tiny or mostly-outside boxes, (x, y, w, h) boxes, a BGR array) raises
        ``ValueError`` or warns with `FaceInputWarning`; see docs/face_detection.md.
        """
        from_array = isinstance(image, np.ndarray)
        image = load_image(image)
        det_scores: list[float | None]
        angles = None
        if boxes is None:
            min_face_score = float(min_face_score)
            if not np.isfinite(min_face_score):
                raise ValueError(f"min_face_score must be a finite number, got {min_face_score}")
            found = self.face_detector.detect(image)
            boxes = np.asarray(found[0], dtype=np.float64).reshape(-1, 4)
            scores = np.asarray(found[1], dtype=np.float64).reshape(-1)
            angles = getattr(found, "angles", None)
            angles = np.zeros(len(boxes)) if angles is None else np.asarray(angles, np.float64).reshape(-1)
            keep = np.flatnonzero(scores >= min_face_score)
            keep = keep[np.argsort(-scores[keep], kind="stable")]
            boxes, scores, angles = boxes[keep], scores[keep], angles[keep]
            det_scores = [float(s) for s in scores]
            if len(boxes) == 0:
                return []
        else:
            if np.size(boxes) == 0:
                return []
            boxes = check_boxes(boxes, image.shape)
            det_scores = [None] * len(boxes)
            if angles is not None:
                angles = np.asarray(angles, np.float64).reshape(-1)
                if len(angles) != len(boxes) or not np.isfinite(angles).all():
                    raise ValueError(f"angles must be {len(boxes)} finite numbers (one per box), got {angles}")
        if from_array:
            warn_if_bgr(image, boxes)
        crops, mats = self._crop_checked(image, boxes, angles)
        pts, scores = self.predict_crops(crops, return_scores=True)
        pts_img = transform_points(pts.astype(np.float64), invert_affine(mats)).astype(np.float32)
        angles = np.zeros(len(boxes)) if angles is None else angles
        if det_scores and det_scores[0] is None and not angles.any():
            self._warn_if_xywh(image, boxes, scores)
        if self._conversion is not None:  # e.g. 300w-68 -> aflw-19 (`schemes.scheme_conversion`)
            pts_img, scores = self._conversion.points(pts_img), self._conversion.scores(scores)
        return [Face(landmarks=pts_img[i], scores=scores[i], box=boxes[i].astype(np.float32),
                     detection_score=det_scores[i], angle=float(angles[i])) for i in range(len(boxes))]

    def _warn_if_xywh(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> None:
        """Warn for each caller's box that is probably an ``(x, y, w, h)`` box (see `XYWH_SIZE_RATIO`);
        costs a network call only for ambiguous boxes whose own face is not already sure."""
        h, w = image.shape[:2]
        x1, y1, x2, y2 = boxes.T
        unsure = np.asarray(scores, np.float64).reshape(len(boxes), -1).mean(axis=1) < SURE_SCORE
        ambiguous = (unsure & (x1 + x2 <= w - 0.5) & (y1 + y2 <= h - 0.5) & (x2 - x1 < XYWH_SIZE_RATIO * x2)
                     & (y2 - y1 < XYWH_SIZE_RATIO * y2) & (x2 / np.maximum(y2, 1e-9) > 0.6)
                     & (x2 / np.maximum(y2, 1e-9) < 1.7))
        idx = np.flatnonzero(ambiguous)
        if len(idx) == 0:
            return
        other = np.stack([x1, y1, x1 + x2, y1 + y2], axis=1)[idx]
        crops, _ = self._crop_checked(image, other)
        _, other_scores = self.predict_crops(crops, return_scores=True)
        for k, i in enumerate(idx):
            mine, theirs = float(np.mean(scores[i])), float(np.mean(other_scores[k]))
            if theirs >= CONFIDENT_SCORE and theirs > mine + XYWH_SCORE_MARGIN:
                b = ", ".join(f"{v:.1f}" for v in boxes[i])
                warnings.warn(f"box [{b}] looks like (x, y, w, h): the network finds a face there more surely "
                              f"(score {theirs:.2f} vs {mine:.2f}) when it is read as (x, y, x + w, y + h); boxes "
                              "are (x1, y1, x2, y2) corners: for (x, y, w, h) use (x, y, x + w, y + h)",
                              FaceInputWarning, stacklevel=3)

    def __repr__(self) -> str:
        c = self.config
        return (f"Detector(config={c.name!r}, num_landmarks={c.num_landmarks}, scheme={self.scheme!r}, "
                f"device={str(self.device)!r}, backend={self.backend!r}, precision={self.precision!r}, "
                f"flip_test={self.flip_test})")
