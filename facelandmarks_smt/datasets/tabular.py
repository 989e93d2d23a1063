"""Tabular and markup annotation files: CSV rows, JSON lists and dlib imglab XML."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import numpy as np

from .base import LandmarkDataset, PathLike

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


