"""Deprecated import path, kept for one release: video tracking lives in `facelandmarks_smt.video`."""

from .geometry import landmark_box  # noqa: F401
from .video.tracking import FaceTracker, SmoothingParams, TrackedFace, _Track  # noqa: F401
