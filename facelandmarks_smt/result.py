"""`Face`: one face's result, what `Detector.detect` returns and video tracking passes on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Face:
    """One face: ``landmarks`` (L, 2) float32 image pixels (0-based pixel centres), per-landmark
    ``scores`` (L,) in [0, 1], the landmark-convention ``box`` (4,) used for the crop, the face
    detector's ``detection_score`` (None when the caller gave the box) and the ``angle`` in
    degrees by which the crop was rotated to make the face upright (0 without rotation
    correction; ``box`` is then the landmark box in that upright frame, centred on the face)."""

    landmarks: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    detection_score: float | None = None
    angle: float = 0.0

    def __len__(self) -> int:
        return len(self.landmarks)

    def __repr__(self) -> str:
        box = "[" + ", ".join(f"{v:.1f}" for v in np.asarray(self.box, np.float64).reshape(-1)) + "]"
        score = "None" if self.detection_score is None else f"{self.detection_score:.3f}"
        return (f"Face(box={box}, detection_score={score}, angle={self.angle:.1f}, "
                f"landmarks={len(self.landmarks)}, mean_landmark_score={float(np.mean(self.scores)):.3f})")
