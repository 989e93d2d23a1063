"""Deprecated import path, kept for one release: the readers live in `facelandmarks_smt.datasets`."""

from ..datasets import *  # noqa: F401,F403
from ..datasets import __all__  # noqa: F401
from ..datasets.base import ImageSource, PathLike, _SequenceABC, _to_rgb_uint8  # noqa: F401
from ..datasets.loading import _find_ci  # noqa: F401
from ..datasets.matlab import _loadmat, _mat_str, _MatImages, _read_mat_image_cells  # noqa: F401
from ..datasets.pts import _is_image, _sibling_pts  # noqa: F401
from ..datasets.tabular import _DLIB_NOT_PRESENT, _part_key, _resolve  # noqa: F401
