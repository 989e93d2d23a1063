"""300-W ``.pts`` files and folders of images with a sibling ``.pts`` each."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .base import IMAGE_EXTENSIONS, LandmarkDataset, PathLike

# ----------------------------------------------------------------------------------------------
# .pts (300-W)
# ----------------------------------------------------------------------------------------------
def read_pts(path: PathLike, one_based: bool = True) -> np.ndarray:
    """Read a 300-W ``.pts`` file as ``float32 (L, 2)`` 0-based points.

    Accepts the standard form (``version: 1`` / ``n_points: 68`` / ``{`` / x y lines / ``}``) and a
    bare list of ``x y`` lines.  300-W coordinates are 1-based (MATLAB), hence ``one_based=True``
    subtracts 1.  Raises ``ValueError`` naming the file and line on anything malformed, because a
    silently mis-parsed file would poison training.
    """
    p = os.fspath(path)
    with open(p, "r", encoding="utf-8-sig") as f:
        lines = f.read().splitlines()

    declared: Optional[int] = None
    in_braces: Optional[bool] = None  # None: no header seen; True: inside { }; False: after }
    pts: List[Tuple[float, float]] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        low = line.lower()
        if ":" in line and in_braces is None and not pts:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "n_points":
                try:
                    declared = int(value.strip())
                except ValueError:
                    raise ValueError(f"{p}:{lineno}: bad n_points value {value.strip()!r}") from None
            elif key != "version":
                raise ValueError(f"{p}:{lineno}: unknown header field {key!r}")
            continue
        if low == "{":
            if in_braces is not None or pts:
                raise ValueError(f"{p}:{lineno}: unexpected '{{'")
            in_braces = True
            continue
        if low == "}":
            if in_braces is not True:
                raise ValueError(f"{p}:{lineno}: '}}' without a matching '{{'")
            in_braces = False
            continue
        if in_braces is False:
            raise ValueError(f"{p}:{lineno}: text after the closing '}}': {line!r}")
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise ValueError(f"{p}:{lineno}: expected 'x y', got {line!r}")
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"{p}:{lineno}: non-numeric coordinates {line!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"{p}:{lineno}: non-finite coordinates {line!r}")
        pts.append((x, y))

    if in_braces is True:
        raise ValueError(f"{p}: missing the closing '}}'")
    if declared is not None and in_braces is None:
        raise ValueError(f"{p}: has an n_points header but no '{{ ... }}' block")
    if not pts:
        raise ValueError(f"{p}: no points found")
    if declared is not None and declared != len(pts):
        raise ValueError(f"{p}: header says n_points: {declared} but the file has {len(pts)} points")
    arr = np.asarray(pts, dtype=np.float32)
    if one_based:
        arr -= 1.0
    return arr


def write_pts(path: PathLike, landmarks: np.ndarray, one_based: bool = True) -> None:
    """Write 0-based ``(L, 2)`` landmarks as a 300-W ``.pts`` file (1-based by default)."""
    lm = np.asarray(landmarks, dtype=np.float64) + (1.0 if one_based else 0.0)
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        f.write(f"version: 1\nn_points:  {len(lm)}\n{{\n")
        for x, y in lm:
            f.write(f"{x:.3f} {y:.3f}\n")
        f.write("}\n")


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def _sibling_pts(img: Path) -> Optional[Path]:
    for cand in (img.with_suffix(".pts"), img.with_suffix(".PTS")):
        if cand.is_file():
            return cand
    return None


class PtsFolderDataset(LandmarkDataset):
    """Images (``.jpg .jpeg .png .bmp``) with a sibling ``.pts`` file, found recursively.

    ``roots`` is one folder or several.  Images without a ``.pts`` are skipped (300-W folders
    hold some).  Files are sorted so the order (and hence any seeded split) is reproducible.
    ``meta["name"]`` is the path relative to its root without extension (e.g.
    ``helen/trainset/100032540_1``), unique across the folders.
    """

    def __init__(self, roots: Union[PathLike, Sequence[PathLike]], one_based: bool = True) -> None:
        super().__init__()
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        for root in roots:
            root_p = Path(root)
            if not root_p.is_dir():
                raise FileNotFoundError(f"dataset folder not found: {root_p}")
            for img in sorted(p for p in root_p.rglob("*") if p.is_file() and _is_image(p)):
                pts = _sibling_pts(img)
                if pts is None:
                    continue
                name = img.relative_to(root_p).with_suffix("").as_posix()
                self._add(img, read_pts(pts, one_based=one_based),
                          {"name": name, "annotation": str(pts), "source": "pts"})


