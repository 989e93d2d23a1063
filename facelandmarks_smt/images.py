"""Turn what users pass as an image (path, PIL image, numpy array) into HxWx3 uint8 RGB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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


def check_boxes(boxes, image_shape: tuple[int, ...]) -> np.ndarray:
    """Validate Nx4 ``x1, y1, x2, y2`` boxes against an image: finite, x2 > x1, y2 > y1, and
    overlapping the image. Returns float64 (N, 4)."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be Nx4 (x1, y1, x2, y2), got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes contain NaN or inf")
    if ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any():
        raise ValueError("boxes must have x2 > x1 and y2 > y1 (got an inverted or empty box)")
    h, w = image_shape[:2]
    outside = (b[:, 2] < 0) | (b[:, 3] < 0) | (b[:, 0] > w - 1) | (b[:, 1] > h - 1)
    if outside.any():
        raise ValueError(f"box {b[np.argmax(outside)].tolist()} lies entirely outside the {w}x{h} image")
    return b
