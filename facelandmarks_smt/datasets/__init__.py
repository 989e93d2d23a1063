"""Readers for annotated face datasets (one module a file format), all returning one class, :class:`LandmarkDataset`.

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

from .base import IMAGE_EXTENSIONS, LandmarkDataset, load_image
from .calibration import calibration_dataset
from .loading import THREE_HUNDRED_W_SPLITS, load_datasets, split_dataset, three_hundred_w
from .matlab import AflwMatDataset, CofwMatDataset
from .pts import PtsFolderDataset, read_pts, write_pts
from .tabular import CsvDataset, DlibXmlDataset, JsonDataset

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
    "calibration_dataset",
]
