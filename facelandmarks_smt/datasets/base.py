"""`LandmarkDataset`: the one class every dataset reader returns (see `facelandmarks_smt.datasets`)."""

from __future__ import annotations

import os
from collections.abc import Sequence as _SequenceABC
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from ..images import read_image_file

PathLike = Union[str, os.PathLike]


#: Image file extensions the folder readers pick up (compared case-insensitively).
IMAGE_EXTENSIONS: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------
def _to_rgb_uint8(img: np.ndarray, source: str) -> np.ndarray:
    """Grey -> 3 channels, RGBA -> RGB, any integer/float type -> uint8 (already RGB order)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{source}: expected a grey, RGB or RGBA image, got shape {img.shape}")
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and float(np.nanmax(img)) <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def load_image(path: PathLike) -> np.ndarray:
    """Read an image file as ``uint8`` ``HxWx3`` RGB (`facelandmarks_smt.images.read_image_file`,
    the decoder `Detector` uses too)."""
    return read_image_file(path)


# ----------------------------------------------------------------------------------------------
# the one dataset class
# ----------------------------------------------------------------------------------------------
ImageSource = Optional[Callable[[], np.ndarray]]


class LandmarkDataset(_SequenceABC):
    """A sequence of annotated faces; ``ds[i]`` is ``(image, landmarks, meta)``.

    Attributes:
        items: list of ``(image_path, landmarks)`` records, landmarks ``float32 (L, 2)`` 0-based.
            Cheap to scan without decoding images (e.g. to fit box adapters or compute stats).
        metas: list of meta dicts, parallel to ``items``.
        num_landmarks: L (0 for an empty dataset); all faces must share it.

    Readers are subclasses that fill these lists; :meth:`subset` and :meth:`concat` return plain
    ``LandmarkDataset`` objects with the same behaviour.  Images come from ``image_path`` unless a
    record carries its own loader (COFW keeps its images inside a ``.mat`` file).
    """

    def __init__(
        self,
        items: Optional[Iterable[Tuple[str, np.ndarray]]] = None,
        metas: Optional[Iterable[Dict[str, Any]]] = None,
        loaders: Optional[Iterable[ImageSource]] = None,
    ) -> None:
        self.items: List[Tuple[str, np.ndarray]] = []
        self.metas: List[Dict[str, Any]] = []
        self._loaders: List[ImageSource] = []
        items = list(items or [])
        metas = list(metas) if metas is not None else [None] * len(items)
        loaders = list(loaders) if loaders is not None else [None] * len(items)
        if not (len(items) == len(metas) == len(loaders)):
            raise ValueError("items, metas and loaders must have the same length")
        for (path, lm), meta, loader in zip(items, metas, loaders):
            self._add(path, lm, meta, loader)

    # -- building -----------------------------------------------------------------------------
    def _add(
        self,
        image_path: PathLike,
        landmarks: np.ndarray,
        meta: Optional[Dict[str, Any]] = None,
        loader: ImageSource = None,
    ) -> None:
        lm = np.asarray(landmarks, dtype=np.float32)
        if lm.ndim != 2 or lm.shape[1] != 2 or lm.shape[0] == 0:
            raise ValueError(f"{image_path}: landmarks must have shape (L, 2), got {lm.shape}")
        if self.items and lm.shape[0] != self.items[0][1].shape[0]:
            raise ValueError(
                f"{image_path}: has {lm.shape[0]} landmarks but the dataset has "
                f"{self.items[0][1].shape[0]}; one dataset holds one landmark scheme"
            )
        path = os.fspath(image_path)
        m = dict(meta or {})
        m.setdefault("path", path)
        m.setdefault("name", Path(path).stem)
        self.items.append((path, lm))
        self.metas.append(m)
        self._loaders.append(loader)

    # -- sequence protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} faces")
        path, lm = self.items[i]
        # copies: augmentation may modify landmarks/meta in place without corrupting the dataset
        return self.load_image(i), lm.copy(), dict(self.metas[i])

    def load_image(self, index: int) -> np.ndarray:
        """The RGB ``uint8`` image of face ``index`` (decoded now; nothing is cached)."""
        loader = self._loaders[index]
        if loader is not None:
            return _to_rgb_uint8(loader(), self.items[index][0])
        return load_image(self.items[index][0])

    @property
    def num_landmarks(self) -> int:
        return int(self.items[0][1].shape[0]) if self.items else 0

    def landmarks_array(self) -> np.ndarray:
        """All landmarks stacked, ``float32 (N, L, 2)``."""
        if not self.items:
            return np.zeros((0, 0, 2), np.float32)
        return np.stack([lm for _, lm in self.items])

    # -- combining ----------------------------------------------------------------------------
    def subset(self, indices: Iterable[int]) -> "LandmarkDataset":
        """A new dataset with the given faces (records are shared, not copied)."""
        idx = [int(i) for i in indices]
        return LandmarkDataset(
            [self.items[i] for i in idx], [self.metas[i] for i in idx], [self._loaders[i] for i in idx]
        )

    @staticmethod
    def concat(datasets: Iterable["LandmarkDataset"]) -> "LandmarkDataset":
        """Concatenate datasets of the same landmark scheme into one."""
        out = LandmarkDataset()
        for ds in datasets:
            for item, meta, loader in zip(ds.items, ds.metas, ds._loaders):
                out._add(item[0], item[1], meta, loader)
        return out

    def __add__(self, other: "LandmarkDataset") -> "LandmarkDataset":
        return LandmarkDataset.concat([self, other])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} faces, {self.num_landmarks} landmarks)"


