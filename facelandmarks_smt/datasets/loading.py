"""Opening annotated data by path (the reader a path's type implies), splits and the 300-W layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .base import LandmarkDataset, PathLike
from .pts import PtsFolderDataset
from .tabular import CsvDataset, DlibXmlDataset, JsonDataset

# ----------------------------------------------------------------------------------------------
# splits, 300-W, auto-detection
# ----------------------------------------------------------------------------------------------
def split_dataset(
    dataset: LandmarkDataset, val_fraction: float, seed: int = 0
) -> Tuple[LandmarkDataset, LandmarkDataset]:
    """Deterministic random split into ``(train, val)``; same seed, same split, on any machine.

    The validation part has ``round(N * val_fraction)`` faces (at least 1 when the fraction is
    positive and N > 1); both parts keep the dataset's order.
    """
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(dataset)
    n_val = int(round(n * float(val_fraction)))
    if val_fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    return dataset.subset(train_idx.tolist()), dataset.subset(val_idx.tolist())


#: The 300-W folders of each split (the layout of the ibug 300-W download and of
#: ``landmarks68/300w``).  "private" is the 300-W competition test set (300W/01_Indoor, 02_Outdoor).
THREE_HUNDRED_W_SPLITS: Dict[str, Tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenge": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
    "private": ("01_Indoor", "02_Outdoor"),
}


def _find_ci(base: Path, rel: str) -> Optional[Path]:
    """Resolve ``rel`` under ``base`` matching each component case-insensitively.

    Tries every case variant (``lfpw/testset`` and ``LFPW/trainset`` may both exist on a
    case-sensitive disk), the exact spelling first.
    """
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return base if base.is_dir() else None
    if not base.is_dir():
        return None
    head, rest = parts[0], "/".join(parts[1:])
    try:
        matches = sorted(c for c in base.iterdir() if c.is_dir() and c.name.lower() == head.lower())
    except OSError:
        return None
    matches.sort(key=lambda c: c.name != head)  # exact spelling first
    for m in matches:
        found = _find_ci(m, rest)
        if found is not None:
            return found
    return None


def three_hundred_w(root: PathLike, split: str = "train", one_based: bool = True) -> LandmarkDataset:
    """The 300-W ``split`` (train, common, challenge, full, private) found under ``root``.

    ``root`` may be the folder holding ``afw/``, ``helen/``, ``lfpw/``, ``ibug/`` or any parent
    up to two levels above it with a ``300w``/``300W`` folder (e.g. ``landmarks68/``); names
    match case-insensitively.  A missing folder is an error naming it, not a silently smaller
    test set.
    """
    key = split.lower()
    if key not in THREE_HUNDRED_W_SPLITS:
        raise ValueError(f"unknown 300-W split {split!r}; choose from {sorted(THREE_HUNDRED_W_SPLITS)}")
    root_p = Path(root)
    if not root_p.is_dir():
        raise FileNotFoundError(f"300-W root folder not found: {root_p}")
    wanted = THREE_HUNDRED_W_SPLITS[key]
    candidates = [root_p]
    for sub in ("300w", "300w/300w", "300w/data"):
        c = _find_ci(root_p, sub)
        if c is not None:
            candidates.append(c)
    best: Optional[List[Optional[Path]]] = None
    for base in candidates:
        found = [_find_ci(base, rel) for rel in wanted]
        if all(f is not None for f in found):
            ds = PtsFolderDataset([f for f in found if f is not None], one_based=one_based)
            # names relative to the 300-W root keep e.g. helen/testset/x and lfpw/testset/x apart
            for (path, _), meta in zip(ds.items, ds.metas):
                meta["name"] = Path(path).relative_to(base).with_suffix("").as_posix()
                meta["subset"] = key
            return LandmarkDataset(ds.items, ds.metas, ds._loaders)
        if best is None or sum(f is not None for f in found) > sum(f is not None for f in best):
            best = found
    assert best is not None
    missing = [rel for rel, f in zip(wanted, best) if f is None]
    raise FileNotFoundError(
        f"300-W split {split!r} needs folders {list(wanted)} under {root_p} (or its 300w/ "
        f"subfolder); missing: {missing}"
    )


def load_datasets(
    paths: Union[PathLike, Sequence[PathLike]], one_based_pts: bool = True
) -> LandmarkDataset:
    """Open each path with the reader its type implies and concatenate them.

    folder -> :class:`PtsFolderDataset`; ``.csv`` -> :class:`CsvDataset`; ``.xml`` ->
    :class:`DlibXmlDataset`; ``.json`` -> :class:`JsonDataset`.  (AFLW and COFW ``.mat`` files
    need extra arguments: build those readers directly and ``LandmarkDataset.concat`` them.)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    parts: List[LandmarkDataset] = []
    for raw in paths:
        p = Path(raw)
        ext = p.suffix.lower()
        if p.is_dir():
            parts.append(PtsFolderDataset(p, one_based=one_based_pts))
        elif not p.exists():
            raise FileNotFoundError(f"dataset path not found: {p}")
        elif ext == ".csv":
            parts.append(CsvDataset(p))
        elif ext == ".xml":
            parts.append(DlibXmlDataset(p))
        elif ext == ".json":
            parts.append(JsonDataset(p))
        else:
            raise ValueError(
                f"{p}: don't know how to read {ext or 'this'} files; give a folder of images + .pts, "
                "a .csv, a dlib .xml or a .json (use AflwMatDataset / CofwMatDataset for .mat)"
            )
    return LandmarkDataset.concat(parts)
