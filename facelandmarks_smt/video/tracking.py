"""Landmarks through a video: faces tracked from frame to frame and smoothed.

Running the face detector on every frame is slow and its boxes jump. A face moves little between
frames, so the tight box around the previous frame's landmarks (the landmark-box convention the
crop expects) is a good box for the next frame, and the detector is only needed to start tracks,
to find faces that enter, every ``redetect_every`` frames, and when a track is lost: its mean
landmark score falls below ``min_landmark_score`` or its box leaves the image. Each track's
landmarks are smoothed with a One Euro filter (see `one_euro`), in units of the face's size so that
the same parameters suit near and far faces. The box for the next frame comes from the *raw*
landmarks, so smoothing never makes the crop lag behind a moving face.

A tilted head stays upright in the crop on tracked frames too: each track carries its face's roll
angle (from the face detector, then from the eye corners of its previous landmarks where the
scheme names them) and the next box is the landmark box in that upright frame
(`geometry.upright_landmark_box`), passed to ``detect`` with the angle, exactly as the face
detector's boxes are. Boxes use the pixel extent of docs/CONVENTIONS.md (`geometry.inside_fraction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..geometry import box_iou, inside_fraction, landmark_box, roll_angle, upright_landmark_box
from ..result import Face
from .one_euro import OneEuroFilter


@dataclass
class SmoothingParams:
    """One Euro parameters for landmark tracks; speeds are in face sizes per second.

    ``min_cutoff`` (Hz): cutoff for a still face; lower removes more jitter.
    ``beta``: cutoff increase per (face size / s) of speed; higher follows fast motion with less lag.
    ``d_cutoff`` (Hz): cutoff of the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 1.0

    def make(self) -> OneEuroFilter:
        return OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff)


@dataclass
class TrackedFace:
    """One face in one frame. ``face.landmarks`` are smoothed (raw when smoothing is off);
    ``raw_landmarks`` are the network's output for this frame; ``detected`` says whether this
    frame's box came from the face detector (else from the previous frame's landmarks)."""

    track_id: int
    face: Face
    raw_landmarks: np.ndarray
    detected: bool


@dataclass
class _Track:
    track_id: int
    raw: np.ndarray
    scale: float
    filter: OneEuroFilter | None
    detection_score: float | None = None
    angle: float = 0.0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(box_iou(a, b)[0, 0])


def _eye_corners(detector) -> tuple[int, int] | None:
    """The eye-corner indices of the landmarks ``detector`` returns, if its scheme names them."""
    from ..schemes import get_scheme

    name = getattr(detector, "scheme", None)
    if not isinstance(name, str):
        return None
    try:
        return get_scheme(name).eye_corner_indices
    except (ValueError, TypeError):
        return None


class FaceTracker:
    """Landmarks of every face in a sequence of frames, tracked and smoothed.

    >>> tracker = FaceTracker(detector, fps=25)
    >>> for frame in frames:                      # HxWx3 uint8 RGB, in order
    ...     for tf in tracker.update(frame):      # list[TrackedFace]
    ...         tf.track_id, tf.face.landmarks

    ``smoothing=None`` turns the One Euro filter off. ``detect_kwargs`` go to ``detector.detect``
    when the face detector runs (e.g. ``min_face_score`` where the detector supports it);
    ``face_filter`` (a ``Face -> bool``) drops detections, e.g. by detection score.
    """

    def __init__(self, detector, fps: float = 30.0, redetect_every: int = 30, min_landmark_score: float = 0.2,
                 min_inside: float = 0.5, smoothing: SmoothingParams | None = SmoothingParams(),
                 match_iou: float = 0.3, detect_kwargs: dict[str, Any] | None = None, face_filter=None) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1 (1 = run the face detector on every frame), "
                             f"got {redetect_every}")
        if not 0 <= min_landmark_score <= 1:
            raise ValueError(f"min_landmark_score must be in [0, 1], got {min_landmark_score}")
        self.detector = detector
        self.fps = float(fps)
        self.redetect_every = int(redetect_every)
        self.min_landmark_score = float(min_landmark_score)
        self.min_inside = float(min_inside)
        self.smoothing = smoothing
        self.match_iou = float(match_iou)
        self.detect_kwargs = dict(detect_kwargs or {})
        self.face_filter = face_filter
        self.frame_index = -1
        self.detector_runs = 0
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detect = 0
        self._rotate = bool(getattr(detector, "correct_rotation", False))
        self._eyes = _eye_corners(detector) if self._rotate else None

    def _lost(self, face: Face, width: int, height: int) -> bool:
        return (float(np.mean(face.scores)) < self.min_landmark_score
                or inside_fraction(landmark_box(face.landmarks), width, height) < self.min_inside)

    def _detect(self, frame: np.ndarray) -> list[tuple[_Track, Face]]:
        """Run the face detector; keep the filter of each track its new face overlaps."""
        self.detector_runs += 1
        self._since_detect = 0
        faces = self.detector.detect(frame, **self.detect_kwargs)
        if self.face_filter is not None:
            faces = [f for f in faces if self.face_filter(f)]
        h, w = frame.shape[:2]
        faces = [f for f in faces if not self._lost(f, w, h)]
        pairs, free = [], list(self._tracks)
        for f in faces:
            box = landmark_box(f.landmarks)
            best = max(free, key=lambda t: _iou(landmark_box(t.raw), box), default=None)
            if best is not None and _iou(landmark_box(best.raw), box) >= self.match_iou:
                free.remove(best)
                track = best
            else:
                track = self._new_track(f)
            track.detection_score = f.detection_score
            track.angle = float(getattr(f, "angle", 0.0) or 0.0)
            pairs.append((track, f))
        return pairs

    def _new_track(self, face: Face) -> _Track:
        b = landmark_box(face.landmarks)
        scale = float(np.sqrt(max(b[2] - b[0], 1.0) * max(b[3] - b[1], 1.0)))
        track = _Track(self._next_id, face.landmarks.astype(np.float64), scale,
                       self.smoothing.make() if self.smoothing is not None else None)
        self._next_id += 1
        return track

    def update(self, frame: np.ndarray, t: float | None = None) -> list[TrackedFace]:
        """Faces of the next frame (HxWx3 uint8 RGB); ``t`` in seconds defaults to index / fps."""
        self.frame_index += 1
        t = self.frame_index / self.fps if t is None else float(t)
        h, w = frame.shape[:2]
        pairs: list[tuple[_Track, Face]] | None = None
        detected = False
        if self._tracks and self._since_detect + 1 < self.redetect_every:
            if all(inside_fraction(landmark_box(tr.raw), w, h) >= self.min_inside for tr in self._tracks):
                faces = self._detect_tracked(frame)
                if not any(self._lost(f, w, h) for f in faces):
                    pairs = list(zip(self._tracks, faces))
                    self._since_detect += 1
        if pairs is None:
            pairs = self._detect(frame)
            detected = True
        out = []
        for track, face in pairs:
            track.raw = face.landmarks.astype(np.float64)
            track.angle = self._next_angle(track)
            landmarks = face.landmarks
            if track.filter is not None:
                landmarks = (track.filter(track.raw / track.scale, t) * track.scale).astype(np.float32)
            out.append(TrackedFace(track.track_id,
                                   Face(landmarks=landmarks, scores=face.scores, box=face.box,
                                        detection_score=track.detection_score if detected else None,
                                        angle=float(getattr(face, "angle", 0.0) or 0.0)),
                                   face.landmarks, detected))
        self._tracks = [track for track, _ in pairs]
        return out

    def _next_angle(self, track: _Track) -> float:
        """The roll of the track's face for the next crop: from the eye corners of its landmarks
        when the scheme names them, else the angle it had (the face detector's)."""
        if not self._rotate:
            return 0.0
        if self._eyes is not None and max(self._eyes) < len(track.raw):
            a, b = self._eyes
            if np.isfinite(track.raw[[a, b]]).all():
                return float(roll_angle(track.raw[a], track.raw[b]))
        return track.angle

    def _detect_tracked(self, frame: np.ndarray) -> list[Face]:
        """``detect`` on the boxes that the tracks' landmarks give, upright in each face's frame."""
        angles = np.array([tr.angle for tr in self._tracks], np.float64)
        if not angles.any():  # upright faces: the plain landmark box (any detector with the detect API)
            return self.detector.detect(frame, boxes=np.stack([landmark_box(tr.raw) for tr in self._tracks]))
        boxes = np.stack([upright_landmark_box(tr.raw, a) for tr, a in zip(self._tracks, angles)])
        return self.detector.detect(frame, boxes=boxes, angles=angles)
