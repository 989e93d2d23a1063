"""Training augmentation (SPEC.md "Training"): one affine warp per sample, points moved with it.

Rotation, scale, box translation and horizontal flip are folded into the single crop transform of
`facelandmarks_smt.preprocess.crop_matrix`, so each sample is resampled exactly once and its
landmarks go through the very same 2x3 matrix as its pixels (no drift between image and labels).
A flip mirrors the crop and then reorders the landmarks with the scheme's mirror permutation
(left eye corner becomes right eye corner). The optional Gaussian blur runs on the finished crop.

Validation uses the same `augment_sample` with ``AugmentConfig(enabled=False)`` (or
``AugmentConfig.disabled()``): it then reduces to the plain inference crop.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from ..config import ModelConfig
from ..geometry import crop_matrix, landmark_box, transform_points, warp_crop
from . import degrade as _degrade


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges; defaults are the paper's (SPEC.md "Training", section 5.3).

    Attributes:
        enabled: ``False`` turns every augmentation off (validation / evaluation crops).
        rotation: max rotation in degrees; the angle is uniform in ``[-rotation, rotation]``.
        flip_prob: probability of a horizontal flip (needs the scheme's mirror permutation).
        translation: max box shift per axis as a fraction of the face box side (the square
            landmark box, *before* the ``crop_factor`` enlargement), uniform in
            ``[-translation, translation]`` independently for x and y.
        scale: face scale is uniform in ``[1 - scale, 1 + scale]`` (> 1: face larger in the crop).
        blur_sigma: Gaussian blur sigma in crop pixels; 0 disables blur.
        blur_prob: probability of blurring a crop. The paper only says "Gaussian blur sigma = 1";
            blurring every crop would make the network see only blurred faces while test crops
            are sharp, so by default half of the crops are blurred.
    """

    enabled: bool = True
    rotation: float = 30.0
    flip_prob: float = 0.5
    translation: float = 0.05
    scale: float = 0.07
    blur_sigma: float = 1.0
    blur_prob: float = 0.5
    # In-the-wild augmentation (off by default, the paper has none of it; see docs/training.md).
    occlusion_prob: float = 0.0
    occlusion_max_patches: int = 2
    occlusion_max_size: float = 0.4
    motion_blur_prob: float = 0.0
    motion_blur_max: int = 9
    color_prob: float = 0.0
    color_strength: float = 0.3
    grey_prob: float = 0.0
    jpeg_prob: float = 0.0
    jpeg_min_quality: int = 30
    # Degradations of `degrade.py` with strengths relative to the face (issue #17: the in-the-wild
    # faces 300-W lacks). Off by default; the draws come after the older ones, so configs without
    # them keep their random streams.
    defocus_prob: float = 0.0
    lowres_prob: float = 0.0
    noise_prob: float = 0.0
    dark_prob: float = 0.0
    object_occlusion_prob: float = 0.0
    # Severities of those degradations are drawn in [0, degrade_max_severity]; 1 is the original
    # scale, up to 2 reaches the heavy blur and large occluders of real in-the-wild photographs.
    degrade_max_severity: float = 1.0

    def __post_init__(self) -> None:
        def check(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"invalid AugmentConfig: {msg}")

        check(isinstance(self.enabled, (bool, np.bool_)), f"enabled must be a bool, got {self.enabled!r}")
        for name in ("rotation", "flip_prob", "translation", "scale", "blur_sigma", "blur_prob"):
            v = getattr(self, name)
            check(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v),
                  f"{name} must be a finite number, got {v!r}")
        check(0.0 <= self.rotation <= 180.0, f"rotation must be in [0, 180] degrees, got {self.rotation}")
        check(0.0 <= self.flip_prob <= 1.0, f"flip_prob must be in [0, 1], got {self.flip_prob}")
        check(0.0 <= self.translation < 1.0, f"translation must be in [0, 1), got {self.translation}")
        check(0.0 <= self.scale < 1.0, f"scale must be in [0, 1), got {self.scale}")
        check(0.0 <= self.blur_sigma <= 20.0, f"blur_sigma must be in [0, 20], got {self.blur_sigma}")
        check(0.0 <= self.blur_prob <= 1.0, f"blur_prob must be in [0, 1], got {self.blur_prob}")
        for name in ("occlusion_prob", "motion_blur_prob", "color_prob", "grey_prob", "jpeg_prob", "defocus_prob",
                     "lowres_prob", "noise_prob", "dark_prob", "object_occlusion_prob"):
            v = getattr(self, name)
            check(isinstance(v, numbers.Real) and 0.0 <= v <= 1.0, f"{name} must be in [0, 1], got {v!r}")
        check(isinstance(self.occlusion_max_patches, int) and 1 <= self.occlusion_max_patches <= 2,
              f"occlusion_max_patches must be 1 or 2, got {self.occlusion_max_patches!r}")
        check(0.0 < self.occlusion_max_size <= 1.0, f"occlusion_max_size must be in (0, 1], got {self.occlusion_max_size}")
        check(isinstance(self.motion_blur_max, int) and self.motion_blur_max >= 3,
              f"motion_blur_max must be an int >= 3, got {self.motion_blur_max!r}")
        check(0.0 <= self.color_strength < 1.0, f"color_strength must be in [0, 1), got {self.color_strength}")
        check(0.0 <= self.degrade_max_severity <= _degrade.MAX_SEVERITY,
              f"degrade_max_severity must be in [0, {_degrade.MAX_SEVERITY}], got {self.degrade_max_severity}")
        check(isinstance(self.jpeg_min_quality, int) and 5 <= self.jpeg_min_quality <= 100,
              f"jpeg_min_quality must be an int in [5, 100], got {self.jpeg_min_quality!r}")

    @classmethod
    def disabled(cls) -> "AugmentConfig":
        """No augmentation: the crop equals the inference crop."""
        return cls(enabled=False)

    @property
    def in_the_wild(self) -> bool:
        return any(p > 0 for p in (self.occlusion_prob, self.motion_blur_prob, self.color_prob,
                                   self.grey_prob, self.jpeg_prob))

    @property
    def degrade_probs(self) -> dict[str, float]:
        """Probability per kind of `degrade.KINDS` (motion blur and JPEG have their older fields)."""
        return {"blur": self.defocus_prob, "lowres": self.lowres_prob, "noise": self.noise_prob,
                "dark": self.dark_prob, "occlusion": self.object_occlusion_prob}

    @property
    def degrades(self) -> bool:
        return any(p > 0 for p in self.degrade_probs.values())

    @property
    def needs_flip_permutation(self) -> bool:
        return self.enabled and self.flip_prob > 0


IDENTITY_PARAMS: dict[str, Any] = {"angle": 0.0, "scale": 1.0, "shift": (0.0, 0.0), "flip": False, "blur": 0.0,
                                   "photo": None}


def sample_photometric(u: np.ndarray, cfg: AugmentConfig) -> dict[str, Any] | None:
    """In-the-wild appearance changes from 22 uniforms ``u``: up to 2 occlusion patches (centre
    and size as fractions of the crop), motion blur, colour/gamma, greyscale, JPEG quality.
    None when nothing is drawn."""
    p: dict[str, Any] = {}
    if u[0] < cfg.occlusion_prob:
        n = 1 + min(int(u[1] * cfg.occlusion_max_patches), cfg.occlusion_max_patches - 1)
        patches = []
        for k in range(n):
            a, b, c, d = u[2 + 4 * k:6 + 4 * k]
            w = cfg.occlusion_max_size * (0.25 + 0.75 * a)
            h = min(1.0, w * (0.5 + b))  # aspect 0.5-1.5
            patches.append((float(0.15 + 0.7 * c), float(0.15 + 0.7 * d), float(w), float(h)))
        p["occlusion"] = patches
        p["occlusion_grey"] = int(u[10] * 255)
    if u[11] < cfg.motion_blur_prob:
        p["motion_blur"] = (3 + 2 * int(u[12] * (cfg.motion_blur_max - 1) / 2), float(u[13] * 180.0))
    if u[14] < cfg.color_prob:
        c = cfg.color_strength
        p["color"] = (float(1 + c * (2 * u[15] - 1)), float(1 + c * (2 * u[16] - 1)),  # contrast, brightness
                      float(1 + c * (2 * u[17] - 1)), float(np.exp(c * (2 * u[18] - 1))))  # saturation, gamma
    if u[19] < cfg.grey_prob:
        p["grey"] = True
    if u[20] < cfg.jpeg_prob:
        p["jpeg"] = int(cfg.jpeg_min_quality + (95 - cfg.jpeg_min_quality) * u[21])
    return p or None


def apply_photometric(crop: np.ndarray, p: dict[str, Any] | None) -> np.ndarray:
    """Apply `sample_photometric`'s draws to an SxSx3 uint8 RGB crop (geometry unchanged)."""
    if not p:
        return crop
    out = crop
    s = crop.shape[0]
    if "color" in p:
        contrast, bright, sat, gamma = p["color"]
        f = out.astype(np.float32) / 255.0
        grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
        f = grey[..., None] + sat * (f - grey[..., None])
        f = (f - 0.5) * contrast + 0.5 * bright
        f = np.clip(f, 0.0, 1.0) ** gamma
        out = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
    if p.get("grey"):
        g = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        out = np.repeat(g[..., None], 3, axis=2)
    if "motion_blur" in p:
        out = _degrade.motion_blur_kernel(out, *p["motion_blur"])
    if "occlusion" in p:
        out = out.copy() if out is crop else out
        for cx, cy, w, h in p["occlusion"]:
            x0, x1 = int((cx - w / 2) * s), int((cx + w / 2) * s)
            y0, y1 = int((cy - h / 2) * s), int((cy + h / 2) * s)
            out[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = p["occlusion_grey"]
    if "jpeg" in p:
        out = _degrade.jpeg(out, int(p["jpeg"]))
    return np.ascontiguousarray(out)


def sample_augmentation(rng: np.random.Generator, cfg: AugmentConfig) -> dict[str, Any]:
    """Draw one sample's augmentation parameters.

    Returns ``{"angle": deg, "scale": s, "shift": (sx, sy), "flip": bool, "blur": sigma}``;
    ``shift`` is in fractions of the face box side (see `AugmentConfig.translation`) and
    ``blur`` is 0.0 for no blur; ``photo`` the in-the-wild draws of `sample_photometric`. The
    draws always happen in the same order and number for a config, so a generator seeded the
    same way gives the same parameters whatever the config's ranges.
    A disabled config returns the identity without touching ``rng``.
    """
    if not cfg.enabled:
        return dict(IDENTITY_PARAMS)
    u = rng.random(6)
    params = {
        "angle": float((2.0 * u[0] - 1.0) * cfg.rotation),
        "scale": float(1.0 + (2.0 * u[1] - 1.0) * cfg.scale),
        "shift": (float((2.0 * u[2] - 1.0) * cfg.translation), float((2.0 * u[3] - 1.0) * cfg.translation)),
        "flip": bool(u[4] < cfg.flip_prob),
        "blur": float(cfg.blur_sigma) if (u[5] < cfg.blur_prob and cfg.blur_sigma > 0) else 0.0,
        # 22 more draws only when in-the-wild augmentation is on, so paper-only configs keep
        # their random streams.
        "photo": sample_photometric(rng.random(22), cfg) if cfg.in_the_wild else None,
    }
    if cfg.degrades:
        params["degrade"] = _degrade.sample_degradations(rng.random(2 * len(_degrade.KINDS)), cfg.degrade_probs,
                                                         cfg.degrade_max_severity)
        params["degrade_seed"] = int(rng.integers(2**31))
    return params


def as_flip_permutation(flip_permutation: Any, num_landmarks: int | None = None) -> np.ndarray | None:
    """A validated int64 permutation from a sequence, a scheme (``.flip_permutation``) or None.

    ``perm[i]`` is the index of the original landmark that becomes landmark ``i`` after mirroring
    (for mirror-symmetric schemes the permutation is its own inverse, so both readings agree).
    """
    if flip_permutation is None:
        return None
    if hasattr(flip_permutation, "flip_permutation"):
        flip_permutation = flip_permutation.flip_permutation
    perm = np.asarray(flip_permutation)
    if perm.ndim != 1 or perm.size == 0 or not np.issubdtype(perm.dtype, np.integer):
        raise ValueError("flip_permutation must be a 1-D sequence of ints")
    perm = perm.astype(np.int64)
    if not np.array_equal(np.sort(perm), np.arange(perm.size)):
        raise ValueError("flip_permutation is not a permutation of 0..L-1")
    if num_landmarks is not None and perm.size != num_landmarks:
        raise ValueError(f"flip_permutation has {perm.size} entries but there are {num_landmarks} landmarks")
    return perm


def augmentation_matrix(box: Sequence[float], model_cfg: ModelConfig, params: dict[str, Any]) -> np.ndarray:
    """The 2x3 image->crop matrix for ``params`` (shift converted to `crop_matrix`'s units)."""
    cf = model_cfg.crop_factor
    sx, sy = params["shift"]
    # crop_matrix shifts by fractions of the enlarged square; ours are of the face box side.
    return crop_matrix(box, cf, model_cfg.input_size, angle=params["angle"], scale=params["scale"],
                       shift=(sx / cf, sy / cf), flip=bool(params["flip"]))


def augment_sample(
    image: np.ndarray,
    landmarks: np.ndarray,
    box: Sequence[float] | None,
    model_cfg: ModelConfig,
    aug_cfg: AugmentConfig,
    rng: np.random.Generator | None,
    flip_permutation: Any = None,
    *,
    params: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training crop.

    Args:
        image: ``HxWx3`` uint8 RGB.
        landmarks: ``(L, 2)`` 0-based pixel-centre points of ``image`` (NaN = missing, kept NaN).
        box: the face's landmark box ``(x1, y1, x2, y2)`` in ``image`` pixels; ``None`` computes
            it from the finite landmarks.
        model_cfg: gives ``input_size`` and ``crop_factor``.
        aug_cfg: the augmentation ranges.
        rng: numpy Generator for the draws (unused when ``params`` is given or augmentation is off).
        flip_permutation: the scheme's mirror permutation (a sequence, or an object with a
            ``flip_permutation`` attribute such as a LandmarkScheme); required only when a flip
            is actually drawn.
        params: explicit parameters (as from `sample_augmentation`), bypassing ``rng``.

    Returns:
        ``(crop SxSx3 uint8, landmarks (L, 2) float32 in crop pixels, matrix 2x3 float64)``, where
        ``matrix`` maps ``image`` pixels to crop pixels *before* the flip permutation (pixels and
        points share it; only the landmark order changes on flip).
    """
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape (L, 2), got {pts.shape}")
    if params is None:
        if aug_cfg.enabled and rng is None:
            raise ValueError("augment_sample needs an rng when augmentation is enabled")
        params = sample_augmentation(rng, aug_cfg) if aug_cfg.enabled else dict(IDENTITY_PARAMS)
    if box is None:
        box = landmark_box(pts)
    m = augmentation_matrix(box, model_cfg, params)
    size = model_cfg.input_size
    crop = warp_crop(image, m, size)
    out = transform_points(pts, m).astype(np.float32, copy=False)
    if params["flip"]:
        perm = as_flip_permutation(flip_permutation, pts.shape[0])
        if perm is None:
            raise ValueError("a horizontal flip was drawn but no flip_permutation was given "
                             "(pass the scheme's permutation or set flip_prob=0)")
        out = out[perm]
    if params["blur"] > 0:
        crop = cv2.GaussianBlur(crop, (0, 0), sigmaX=float(params["blur"]))
    crop = apply_photometric(crop, params.get("photo"))
    if params.get("degrade"):
        crop = _degrade.apply_degradations(crop, landmark_box(out), params["degrade"], params["degrade_seed"])
    return crop, np.ascontiguousarray(out), m
