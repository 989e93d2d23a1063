"""MATLAB ``.mat`` annotations: AFLW-19 (``AFLWinfo_release.mat``) and COFW-68."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .base import LandmarkDataset, PathLike, _to_rgb_uint8

# ----------------------------------------------------------------------------------------------
# MATLAB files: AFLW-19 and COFW-68
# ----------------------------------------------------------------------------------------------
def _mat_str(x: Any) -> str:
    """Unwrap scipy.io.loadmat's nested object/char arrays down to a Python string."""
    while isinstance(x, np.ndarray):
        if x.dtype.kind in "US" and x.size == 1:
            x = x.reshape(-1)[0]
        elif x.dtype.kind in "US":  # char matrix
            x = "".join(x.reshape(-1).tolist())
        elif x.size == 1:
            x = x.reshape(-1)[0]
        else:
            raise ValueError(f"cannot read a string from an array of shape {x.shape}")
    if isinstance(x, bytes):
        x = x.decode("utf-8")
    return str(x)


def _loadmat(path: PathLike) -> Dict[str, Any]:
    from scipy.io import loadmat

    try:
        return loadmat(os.fspath(path))
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise
    except (ValueError, TypeError, OSError) as e:
        raise ValueError(f"{path}: cannot read MATLAB file ({e})") from None


class AflwMatDataset(LandmarkDataset):
    """AFLW-19 from ``AFLWinfo_release.mat`` (Zhu et al. CVPR 2016, as used by SAN, LAB, HRNet).

    Fields: ``nameList`` (image paths relative to ``image_root``, usually ``aflw/data/flickr``),
    ``data`` (N x 38: 19 x then 19 y, 1-based), ``mask_new`` (N x 19 visibility), ``bbox``
    (N x 4: left, right, top, bottom, 1-based), ``ra`` (a 1-based permutation of 1..N).

    The common protocol: the first ``num_train`` (20000) entries of ``ra`` are train, the rest
    test; ``protocol="frontal"`` keeps the faces whose 19 points are all visible (AFLW-Frontal).
    ``meta["box"]`` is the bbox 0-based ``(x1, y1, x2, y2)`` and ``meta["box_size"]`` is
    ``sqrt(w * h)``, the AFLW error normaliser; ``meta["visible"]`` is the mask as bools.
    """

    def __init__(
        self,
        mat_path: PathLike,
        image_root: PathLike,
        split: str = "all",
        protocol: str = "full",
        num_train: int = 20000,
    ) -> None:
        super().__init__()
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if protocol not in ("full", "frontal"):
            raise ValueError(f"protocol must be 'full' or 'frontal', got {protocol!r}")
        mat_path, root = Path(mat_path), Path(image_root)
        try:
            mat = _loadmat(mat_path)
        except NotImplementedError:
            raise ValueError(f"{mat_path}: MATLAB v7.3 files are not supported for AFLW; "
                             "re-save it with save(..., '-v7')") from None
        missing = [k for k in ("nameList", "data", "mask_new", "bbox", "ra") if k not in mat]
        if missing:
            raise ValueError(f"{mat_path}: missing fields {missing} (not AFLWinfo_release.mat?)")
        data = np.asarray(mat["data"], dtype=np.float64)
        names = np.asarray(mat["nameList"]).reshape(-1)
        mask = np.asarray(mat["mask_new"]).astype(bool)
        bbox = np.asarray(mat["bbox"], dtype=np.float64)
        ra = np.asarray(mat["ra"]).reshape(-1).astype(np.int64) - 1
        n = len(names)
        if data.shape != (n, 38) or mask.shape != (n, 19) or bbox.shape != (n, 4):
            raise ValueError(
                f"{mat_path}: inconsistent shapes nameList {n}, data {data.shape} (want (N, 38)), "
                f"mask_new {mask.shape} (want (N, 19)), bbox {bbox.shape} (want (N, 4))"
            )
        if sorted(ra.tolist()) != list(range(n)):
            raise ValueError(f"{mat_path}: 'ra' is not a permutation of 1..{n}")

        if split == "train":
            indices = ra[:num_train]
        elif split == "test":
            indices = ra[num_train:]
        else:
            indices = np.arange(n)
        if protocol == "frontal":
            indices = [i for i in indices if mask[i].all()]

        for i in indices:
            i = int(i)
            rel = _mat_str(names[i]).replace("\\", "/")
            lm = np.stack([data[i, :19], data[i, 19:]], axis=1) - 1.0
            left, right, top, bottom = bbox[i] - 1.0
            meta = {
                "name": Path(rel).with_suffix("").as_posix(),
                "index": i,
                "box": (float(left), float(top), float(right), float(bottom)),
                "box_size": float(math.sqrt(max(right - left, 0.0) * max(bottom - top, 0.0))),
                "visible": mask[i].copy(),
                "source": "aflw",
            }
            self._add(root / rel, lm, meta)


class _MatImages:
    """Lazily opened image cell array of a .mat file; picklable for DataLoader workers."""

    def __init__(self, mat_path: str, key: str) -> None:
        self.mat_path, self.key = mat_path, key
        self._images: Optional[List[np.ndarray]] = None

    def __getstate__(self):  # do not ship the decoded images to worker processes
        return {"mat_path": self.mat_path, "key": self.key, "_images": None}

    def images(self) -> List[np.ndarray]:
        if self._images is None:
            self._images = _read_mat_image_cells(self.mat_path, self.key)
        return self._images

    def get(self, index: int) -> np.ndarray:
        return self.images()[index]


def _read_mat_image_cells(mat_path: str, key: str) -> List[np.ndarray]:
    """Read a MATLAB cell array of images (v7 via scipy, v7.3 via h5py)."""
    try:
        from scipy.io import loadmat

        mat = loadmat(mat_path, variable_names=[key])
    except NotImplementedError:  # v7.3 = HDF5
        try:
            import h5py
        except ImportError:
            raise ImportError(
                f"{mat_path} is a MATLAB v7.3 (HDF5) file; install h5py to read it "
                "(pip install h5py)"
            ) from None
        with h5py.File(mat_path, "r") as f:
            if key not in f:
                raise ValueError(f"{mat_path}: no variable {key!r}")
            refs = np.asarray(f[key]).reshape(-1)
            # HDF5 stores MATLAB's column-major HxWx3 as 3xWxH: reverse the axes back
            return [_to_rgb_uint8(np.asarray(f[r]).T, mat_path) for r in refs]
    if key not in mat:
        raise ValueError(f"{mat_path}: no variable {key!r}; found {sorted(k for k in mat if not k.startswith('__'))}")
    cells = np.asarray(mat[key])
    if cells.dtype != object:
        raise ValueError(f"{mat_path}: {key!r} is not a cell array of images")
    return [_to_rgb_uint8(c, mat_path) for c in cells.reshape(-1)]


class CofwMatDataset(LandmarkDataset):
    """COFW-68 test set: Ghiasi & Fowlkes' 68-point re-annotation plus the COFW test images.

    ``annotations_dir`` holds ``<k>_points.mat`` files (``k`` = 1..N, fields ``Points`` 68x2
    1-based and ``Occ`` 68 occlusion flags); ``images_mat`` is ``COFW_test_color.mat`` whose
    cell array ``IsT`` holds the N images in the same order.  The images are decoded from the
    ``.mat`` on first access (v7 with scipy; v7.3 needs h5py).  ``meta["occluded"]`` is the Occ
    flags as bools; ``meta["path"]`` names ``<images_mat>:IsT[i]``.
    """

    def __init__(
        self,
        images_mat: PathLike,
        annotations_dir: PathLike,
        image_key: str = "IsT",
        one_based: bool = True,
    ) -> None:
        super().__init__()
        images_mat, ann = Path(images_mat), Path(annotations_dir)
        if not images_mat.is_file():
            raise FileNotFoundError(f"COFW image file not found: {images_mat}")
        if not ann.is_dir():
            raise FileNotFoundError(f"COFW-68 annotation folder not found: {ann}")
        files = {}
        for p in ann.iterdir():
            stem = p.name[: -len("_points.mat")] if p.name.lower().endswith("_points.mat") else ""
            if stem.isdigit():
                files[int(stem)] = p
        if not files:
            raise ValueError(f"{ann}: no <k>_points.mat files")
        ks = sorted(files)
        if ks != list(range(1, len(ks) + 1)):
            raise ValueError(f"{ann}: <k>_points.mat files must be numbered 1..N without gaps")
        source = _MatImages(os.fspath(images_mat), image_key)
        for k in ks:
            try:
                m = _loadmat(files[k])
            except NotImplementedError:
                raise ValueError(f"{files[k]}: MATLAB v7.3 annotation files are not supported") from None
            if "Points" not in m:
                raise ValueError(f"{files[k]}: no 'Points' variable")
            lm = np.asarray(m["Points"], dtype=np.float32)
            if lm.shape != (68, 2):
                raise ValueError(f"{files[k]}: Points must be 68x2, got {lm.shape}")
            if one_based:
                lm = lm - 1.0
            meta: Dict[str, Any] = {"name": f"cofw68/{k}", "index": k - 1, "source": "cofw"}
            if "Occ" in m:
                meta["occluded"] = np.asarray(m["Occ"]).reshape(-1).astype(bool)
            self._add(f"{images_mat}:{image_key}[{k - 1}]", lm, meta,
                      loader=functools.partial(source.get, k - 1))


