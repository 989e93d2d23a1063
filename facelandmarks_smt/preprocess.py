"""Deprecated import path, kept for one release: the crop geometry lives in `facelandmarks_smt.geometry`."""

from .geometry import (crop_matrix, invert_affine, landmark_box, normalise_crops, square_box,  # noqa: F401
                       transform_points, warp_crop)
from .geometry import _warp_bilinear  # noqa: F401
