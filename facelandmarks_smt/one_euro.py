"""Deprecated import path, kept for one release: the One Euro filter lives in `facelandmarks_smt.video.one_euro`."""

from .video.one_euro import OneEuroFilter, smoothing_factor  # noqa: F401
