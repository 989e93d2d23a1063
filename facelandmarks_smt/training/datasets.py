"""Readers for annotated face datasets, all returning one class, :class:`LandmarkDataset`.

Every reader yields samples ``(image, landmarks, meta)``:

* ``image``: ``uint8`` ``HxWx3`` **RGB** numpy array, loaded lazily on ``__getitem__`` so that
  a dataset of thousands of faces costs only its annotations in memory;
* ``landmarks``: ``float32`` ``(L, 2)`` ``(x, y)``, **0-based pixel centres**
  (docs/CONVENTIONS.md); readers of 1-based formats (300-W ``.pts``, AFLW and COFW ``.mat``)
  subtract 1;
* ``meta``: a dict with at least ``path`` (the image file) and ``name`` (a short unique id), plus
  whatever the format carries (``box`` as ``(x1, y1, x2, y2)`` 0-based, ``box_size``,
  ``visible``, ``occluded`` ...).

One class for all formats means training, evaluation and the detector-box adapter fitting never
care where the faces came from, and datasets can be concatenated (:func:`load_datasets`) and split
(:func:`split_dataset`) freely.

Formats: 300-W ``.pts`` folders (:class:`PtsFolderDataset`, :func:`three_hundred_w`),
CSV (:class:`CsvDataset`), dlib imglab XML (:class:`DlibXmlDataset`), JSON (:class:`JsonDataset`),
AFLW-19 (:class:`AflwMatDataset`), COFW-68 (:class:`CofwMatDataset`).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence as _SequenceABC
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..images import read_image_file

__all__ = [
    "IMAGE_EXTENSIONS",
    "LandmarkDataset",
    "read_pts",
    "write_pts",
    "load_image",
    "PtsFolderDataset",
    "CsvDataset",
    "DlibXmlDataset",
    "JsonDataset",
    "AflwMatDataset",
    "CofwMatDataset",
    "split_dataset",
    "three_hundred_w",
    "THREE_HUNDRED_W_SPLITS",
    "load_datasets",
]

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


# ----------------------------------------------------------------------------------------------
# CSV / JSON / dlib XML
# ----------------------------------------------------------------------------------------------
def _resolve(image: str, base: Path) -> Path:
    p = Path(image)
    return p if p.is_absolute() else base / p


class CsvDataset(LandmarkDataset):
    """CSV rows ``name,x0,y0,x1,y1,...``; an optional header line is detected and skipped.

    ``name`` is an image path relative to ``image_root`` (default: the CSV's folder).
    Coordinates are 0-based unless ``one_based=True``.
    """

    def __init__(
        self, csv_path: PathLike, image_root: Optional[PathLike] = None, one_based: bool = False
    ) -> None:
        super().__init__()
        csv_path = Path(csv_path)
        root = Path(image_root) if image_root is not None else csv_path.parent
        with open(csv_path, "r", encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        first = True
        for lineno, row in enumerate(rows, start=1):
            row = [c.strip() for c in row]
            if not row or all(not c for c in row) or row[0].startswith("#"):
                continue
            is_first, first = first, False
            try:
                values = [float(c) for c in row[1:]]
            except ValueError:
                if is_first:  # header line
                    continue
                raise ValueError(f"{csv_path}:{lineno}: non-numeric coordinate in row {row[:3]}...") from None
            if len(values) < 2 or len(values) % 2:
                raise ValueError(
                    f"{csv_path}:{lineno}: expected name followed by x,y pairs, got {len(values)} numbers"
                )
            lm = np.asarray(values, dtype=np.float32).reshape(-1, 2)
            if one_based:
                lm -= 1.0
            try:
                self._add(_resolve(row[0], root), lm,
                          {"name": Path(row[0]).with_suffix("").as_posix(), "source": "csv"})
            except ValueError as e:
                raise ValueError(f"{csv_path}:{lineno}: {e}") from None


class JsonDataset(LandmarkDataset):
    """A JSON list of ``{"image": path, "landmarks": [[x, y], ...]}`` (0-based).

    Paths are relative to the JSON's folder (or ``image_root``).  Optional ``"box"``
    ``[x1, y1, x2, y2]`` and ``"name"`` keys go into meta; other keys are kept too.
    """

    def __init__(self, path: PathLike, image_root: Optional[PathLike] = None, one_based: bool = False) -> None:
        super().__init__()
        path = Path(path)
        root = Path(image_root) if image_root is not None else path.parent
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of {{'image', 'landmarks'}} objects")
        for k, rec in enumerate(data):
            if not isinstance(rec, dict) or "image" not in rec or "landmarks" not in rec:
                raise ValueError(f"{path}: entry {k} needs 'image' and 'landmarks' keys")
            try:
                lm = np.asarray(rec["landmarks"], dtype=np.float32)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: entry {k}: landmarks are not a numeric [[x, y], ...] list") from None
            if lm.ndim != 2 or lm.shape[1] != 2:
                raise ValueError(f"{path}: entry {k}: landmarks must be [[x, y], ...], got shape {lm.shape}")
            if one_based:
                lm = lm - 1.0
            meta = {key: v for key, v in rec.items() if key not in ("image", "landmarks")}
            if "box" in meta:
                meta["box"] = tuple(float(v) for v in meta["box"])
            meta.setdefault("name", Path(str(rec["image"])).with_suffix("").as_posix())
            meta["source"] = "json"
            self._add(_resolve(str(rec["image"]), root), lm, meta)


#: dlib's marker for a part that is not present (OBJECT_PART_NOT_PRESENT).
_DLIB_NOT_PRESENT = -2147483648


def _part_key(name: str):
    return (0, int(name), "") if name.strip().lstrip("-").isdigit() else (1, 0, name)


class DlibXmlDataset(LandmarkDataset):
    """dlib imglab XML (``<images><image file=..><box top left width height><part name x y/>``).

    One face per ``<box>`` with parts (boxes with ``ignore="1"`` or no parts are skipped); parts
    are ordered by name (numerically when the names are numbers).  Image paths are relative to
    the XML's folder.  dlib coordinates are already 0-based pixels.  ``meta["box"]`` is the dlib
    rectangle as pixel centres ``(left, top, left + width - 1, top + height - 1)``; parts dlib
    marks as not present become NaN.
    """

    def __init__(self, xml_path: PathLike, one_based: bool = False) -> None:
        super().__init__()
        xml_path = Path(xml_path)
        try:
            tree = ET.parse(xml_path)
        except ET.ParseError as e:
            raise ValueError(f"{xml_path}: malformed XML ({e})") from None
        images = tree.getroot().find("images")
        if images is None:
            raise ValueError(f"{xml_path}: no <images> element (not a dlib imglab file?)")
        for image in images.findall("image"):
            file = image.get("file")
            if not file:
                raise ValueError(f"{xml_path}: <image> without a 'file' attribute")
            for b, box in enumerate(image.findall("box")):
                if box.get("ignore", "0").strip() in ("1", "true"):
                    continue
                parts = box.findall("part")
                if not parts:
                    continue
                try:
                    named = sorted(
                        ((p.get("name", ""), float(p.get("x")), float(p.get("y"))) for p in parts),
                        key=lambda t: _part_key(t[0]),
                    )
                    top, left = float(box.get("top")), float(box.get("left"))
                    width, height = float(box.get("width")), float(box.get("height"))
                except (TypeError, ValueError):
                    raise ValueError(f"{xml_path}: {file}: box {b} has missing or non-numeric attributes") from None
                lm = np.asarray([(x, y) for _, x, y in named], dtype=np.float32)
                missing = (lm == _DLIB_NOT_PRESENT).any(axis=1)
                if one_based:
                    lm -= 1.0
                lm[missing] = np.nan
                meta = {
                    "name": f"{Path(file).with_suffix('').as_posix()}#{b}",
                    "box": (left, top, left + width - 1.0, top + height - 1.0),
                    "source": "dlib-xml",
                }
                try:
                    self._add(_resolve(file, xml_path.parent), lm, meta)
                except ValueError as e:
                    raise ValueError(f"{xml_path}: {e}") from None


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
