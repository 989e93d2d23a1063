"""Landmarks through video: faces tracked from frame to frame (`tracking`) and smoothed with the
One Euro filter (`one_euro`). Works with any detector object that has the `Detector.detect` API."""

from .one_euro import OneEuroFilter, smoothing_factor
from .tracking import FaceTracker, SmoothingParams, TrackedFace

__all__ = ["FaceTracker", "SmoothingParams", "TrackedFace", "OneEuroFilter", "smoothing_factor"]
