"""Calibration data for int8 quantisation: what a ``calibration`` argument names, which faces are
drawn from it, and a hash of their content (part of the int8 graph's cache key).

``calibration`` may be a folder or file of annotated faces, a list of them, or a
`LandmarkDataset`. Faces are drawn without replacement with a fixed seed; the content hash covers
every face's landmarks and the bytes of the drawn images, so an edited folder never reuses a graph
calibrated on its old contents.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import LandmarkDataset
from .loading import load_datasets

#: 32 rather than the former 256: int8 NME was the same for 16, 32, 64 and 256 faces (tiny and small,
#: 330 helen test faces, within 0.01 of each other), and calibration time grows with the count
#: (docs/benchmarks.md, "The first int8 build").
DEFAULT_NUM_FACES = 32
DEFAULT_SEED = 0
SELECTION = "numpy default_rng(seed).permutation(len(faces))[:num]"


def calibration_dataset(calibration: Any) -> tuple[LandmarkDataset, list[str]]:
    """``(faces, absolute folders)`` of a ``calibration`` argument (see the module docstring)."""
    if isinstance(calibration, LandmarkDataset):
        return calibration, sorted({str(Path(item[0]).parent.resolve()) for item in calibration.items})
    paths = [calibration] if isinstance(calibration, (str, os.PathLike)) else list(calibration)
    if not paths:
        raise ValueError("calibration names no folders of annotated faces")
    return load_datasets([str(p) for p in paths]), [str(Path(p).resolve()) for p in paths]


def select_faces(num_faces: int, num: int = DEFAULT_NUM_FACES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Indices of the ``num`` faces drawn (sorted) out of ``num_faces``: `SELECTION`."""
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    return np.sort(np.random.default_rng(seed).permutation(num_faces)[:num])


def content_sha256(data: LandmarkDataset, num: int = DEFAULT_NUM_FACES, seed: int = DEFAULT_SEED) -> str:
    """sha256 over every face's landmarks and name and the file bytes of the faces `select_faces` draws."""
    h = hashlib.sha256(f"{len(data)}|{num}|{seed}|".encode())
    for (_, lm), meta in zip(data.items, data.metas):
        h.update(f"{meta.get('name', '')}|".encode())
        h.update(np.ascontiguousarray(lm, dtype=np.float32).tobytes())
    for i in select_faces(len(data), num, seed):
        path = data.items[int(i)][0]
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        else:  # images kept inside another file (COFW's .mat): its name stands for them
            h.update(path.encode())
    return h.hexdigest()
