"""Turn what users pass as an image (path, PIL image, numpy array) into HxWx3 uint8 RGB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .geometry import inside_fraction


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB: the one file decoder of training and inference.

    OpenCV decodes (the same libjpeg build for the trainer's cache and for `Detector`, so a face
    is the same pixels in both). The EXIF orientation tag is ignored on purpose: landmark
    annotations (300-W, AFLW, dlib imglab) refer to the stored pixel grid. Bytes are read with
    numpy so that non-ASCII paths work on every OS.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    data = np.fromfile(os.fspath(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if img is None:
        raise ValueError(f"cannot read image file {p}: empty, truncated or not an image")
    return np.ascontiguousarray(img[:, :, ::-1])


def load_image(image) -> np.ndarray:
    """HxWx3 uint8 RGB from a file path, a PIL image, or a numpy array.

    Arrays may be HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA, alpha dropped); they must be uint8
    (a float image's range is ambiguous, so it is refused rather than guessed).
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(image)
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            if image.width == 0 or image.height == 0:
                raise ValueError("image is empty (zero width or height)")
            return np.asarray(image.convert("RGB"))
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a file path, PIL image or numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image array must be uint8 (0-255), got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image array must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


class FaceInputWarning(UserWarning):
    """Input that is valid but probably not what the caller meant (tiny face, BGR array, ...)."""


#: Boxes whose longer side is below this many pixels are refused: no face fits, and such boxes
#: are usually normalised (0-1) coordinates.
MIN_BOX_SIDE = 4.0
#: Boxes smaller than this (longer side, pixels) give a warning: landmarks are unreliable there.
SMALL_BOX_SIDE = 16.0
#: A box with less than this share of its area inside the image is refused; below
#: `WARN_INSIDE_FRACTION` it is accepted with a warning (faces cut by the frame edge are real).
MIN_INSIDE_FRACTION = 0.1
WARN_INSIDE_FRACTION = 0.5
#: Landmark boxes of 5,474 annotated faces (300-W, YTF) have width/height 0.69-1.64; outside
#: 1/MAX_ASPECT..MAX_ASPECT a box is probably (x, y, w, h) or otherwise not a face box.
MAX_ASPECT = 2.0


def _fmt_box(b) -> str:
    return "[" + ", ".join(f"{float(v):.1f}" for v in b) + "]"


def check_boxes(boxes, image_shape: tuple[int, ...]) -> np.ndarray:
    """Validate Nx4 ``x1, y1, x2, y2`` boxes against an image and return them as float64 (N, 4).

    Errors (``ValueError``): wrong shape, NaN/inf, x2 <= x1 or y2 <= y1 (often an
    ``(x, y, w, h)`` box), a box under `MIN_BOX_SIDE` px, a box (nearly) entirely outside the
    image. Warnings (`FaceInputWarning`): a box under `SMALL_BOX_SIDE` px, a box mostly outside
    the image, a box far from square (probably ``(x, y, w, h)``).
    """
    import warnings

    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be Nx4 (x1, y1, x2, y2), got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes contain NaN or inf")
    h, w = image_shape[:2]
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    for i in range(len(b)):
        box = _fmt_box(b[i])
        if bw[i] <= 0 or bh[i] <= 0:
            raise ValueError(f"box {box} has x2 <= x1 or y2 <= y1 (an inverted or empty box); boxes are "
                             "(x1, y1, x2, y2) corners; for (x, y, w, h) use (x, y, x + w, y + h)")
        side = max(bw[i], bh[i])
        if side < MIN_BOX_SIDE:
            raise ValueError(f"box {box} is {side:.2g} px across, too small to hold a face; boxes are in "
                             "pixels (multiply normalised 0-1 coordinates by the image width and height)")
        inside = inside_fraction(b[i], w, h)  # the image covers [-0.5, w - 0.5] x [-0.5, h - 0.5]
        if inside == 0:
            raise ValueError(f"box {box} lies entirely outside the {w}x{h} image")
        if inside < MIN_INSIDE_FRACTION:
            raise ValueError(f"box {box} lies almost entirely outside the {w}x{h} image "
                             f"({100 * inside:.1f} % inside); landmarks would be guesses")
        if inside < WARN_INSIDE_FRACTION:
            warnings.warn(f"box {box} lies mostly outside the {w}x{h} image ({100 * inside:.0f} % inside); "
                          "landmarks outside the image are guesses", FaceInputWarning, stacklevel=3)
        if side < SMALL_BOX_SIDE:
            warnings.warn(f"box {box} is only {side:.1f} px across; landmarks of faces under "
                          f"{SMALL_BOX_SIDE:g} px are unreliable", FaceInputWarning, stacklevel=3)
        aspect = bw[i] / bh[i]
        if not 1 / MAX_ASPECT <= aspect <= MAX_ASPECT:
            warnings.warn(f"box {box} is {aspect:.2f} times as wide as tall, but face boxes are about square "
                          "(0.7-1.6); boxes are (x1, y1, x2, y2): for (x, y, w, h) use (x, y, x + w, y + h)",
                          FaceInputWarning, stacklevel=3)
    return b


#: Mean blue minus mean red (0-255) over the middle of the face boxes above which an RGB array
#: is taken to be BGR. Skin of every tone has red above blue in RGB; see docs/face_detection.md
#: for how this was set on 300-W training faces.
BGR_MARGIN = 20.0


def bgr_score(image: np.ndarray, boxes: np.ndarray) -> float:
    """Median over faces of mean(B) - mean(R) in the middle half of each box (positive: bluish)."""
    h, w = image.shape[:2]
    diffs = []
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        cx, cy, qw, qh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
        xa, xb = int(np.clip(round(cx - qw), 0, w - 1)), int(np.clip(round(cx + qw), 0, w - 1)) + 1
        ya, yb = int(np.clip(round(cy - qh), 0, h - 1)), int(np.clip(round(cy + qh), 0, h - 1)) + 1
        patch = image[ya:yb, xa:xb].reshape(-1, 3).astype(np.float64)
        if len(patch):
            diffs.append(patch[:, 2].mean() - patch[:, 0].mean())
    return float(np.median(diffs)) if diffs else 0.0


def warn_if_bgr(image: np.ndarray, boxes: np.ndarray) -> bool:
    """Warn (`FaceInputWarning`) when the faces' skin is clearly bluer than red, the sign of a
    BGR array (what ``cv2.imread`` returns) passed as RGB; a warning, not an error, because
    blue light can do the same. Returns whether it warned."""
    import warnings

    if len(boxes) == 0 or bgr_score(image, boxes) <= BGR_MARGIN:
        return False
    warnings.warn("the faces in this image are bluer than red, so the array is probably BGR (as "
                  "cv2.imread returns); pass RGB, e.g. image[:, :, ::-1] or "
                  "cv2.cvtColor(image, cv2.COLOR_BGR2RGB)", FaceInputWarning, stacklevel=3)
    return True
