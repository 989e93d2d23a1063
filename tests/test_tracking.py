"""Face tracking through frames: when the face detector runs, when a track is lost, and that the
One Euro smoothing reduces frame-to-frame jitter of the shipped model on a still face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelandmarks_smt.detector import Face
from facelandmarks_smt.tracking import FaceTracker, SmoothingParams, landmark_box

ASTRONAUT = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"


class FakeDetector:
    """Finds one square 'face' whose landmarks are the corners and centre of the bright pixels;
    the landmark score is the brightness there, so a dark frame loses the track."""

    def __init__(self):
        self.calls = []  # "detector" or "boxes"

    def detect(self, image, boxes=None):
        self.calls.append("detector" if boxes is None else "boxes")
        ys, xs = np.nonzero(image[:, :, 0] > 128)
        if len(xs) == 0:
            return [] if boxes is None else [self._face(np.array([[1.0, 1], [2, 2]]), 0.0, b) for b in boxes]
        pts = np.array([[xs.min(), ys.min()], [xs.max(), ys.max()], [xs.mean(), ys.mean()]], np.float32)
        return [self._face(pts, 0.9, landmark_box(pts) if boxes is None else boxes[0])]

    @staticmethod
    def _face(pts, score, box):
        return Face(landmarks=np.asarray(pts, np.float32), scores=np.full(len(pts), score, np.float32),
                    box=np.asarray(box, np.float32), detection_score=1.0)


def square_frame(x, y, size=20, shape=(100, 120), bright=True):
    img = np.zeros(shape + (3,), np.uint8)
    if bright:
        img[y:y + size, x:x + size] = 255
    return img


def test_detector_runs_on_first_frame_then_every_n_frames():
    det = FakeDetector()
    tracker = FaceTracker(det, fps=10, redetect_every=3, smoothing=None)
    for i in range(7):
        out = tracker.update(square_frame(10 + i, 20))
        assert len(out) == 1 and out[0].track_id == 0
        assert out[0].detected == (i % 3 == 0)
    assert det.calls == ["detector", "boxes", "boxes"] * 2 + ["detector"]
    assert tracker.detector_runs == 3
    np.testing.assert_allclose(out[0].face.landmarks[0], [16, 20])  # follows the square, unsmoothed


def test_lost_track_is_redetected_and_a_new_track_starts():
    det = FakeDetector()
    tracker = FaceTracker(det, fps=10, redetect_every=100, min_landmark_score=0.5, smoothing=SmoothingParams())
    assert tracker.update(square_frame(10, 20))[0].track_id == 0
    assert tracker.update(square_frame(11, 20))[0].detected is False
    # the face vanishes: the tracked box gives score 0 -> lost -> detector runs, finds nothing
    assert tracker.update(square_frame(11, 20, bright=False)) == []
    assert det.calls[-2:] == ["boxes", "detector"]
    # nothing tracked: the detector runs on every frame until a face comes back, as a new track
    out = tracker.update(square_frame(60, 50))
    assert det.calls[-1] == "detector" and out[0].track_id == 1 and out[0].detected
    np.testing.assert_allclose(out[0].face.landmarks, out[0].raw_landmarks)  # a new filter starts fresh


def test_box_leaving_the_image_triggers_redetect():
    det = FakeDetector()
    tracker = FaceTracker(det, fps=10, redetect_every=100, smoothing=None)
    tracker.update(square_frame(50, 20, shape=(100, 120)))
    # the face moves so that most of its tracked box is outside the next (smaller) frame
    out = tracker.update(square_frame(5, 5, shape=(30, 60)))
    assert det.calls == ["detector", "detector"] and out[0].detected


def test_redetect_keeps_the_track_and_its_filter_when_boxes_overlap():
    det = FakeDetector()
    tracker = FaceTracker(det, fps=10, redetect_every=2, smoothing=SmoothingParams(min_cutoff=0.1, beta=0.0))
    tracker.update(square_frame(10, 20))
    tracker.update(square_frame(10, 20))
    out = tracker.update(square_frame(14, 20))  # a detector frame, same face moved 4 px
    assert out[0].detected and out[0].track_id == 0
    # the kept filter still smooths: the reported corner lags behind the raw one
    assert 10 < out[0].face.landmarks[0, 0] < 14 and out[0].raw_landmarks[0, 0] == 14


def test_bad_settings():
    with pytest.raises(ValueError, match="redetect_every"):
        FaceTracker(FakeDetector(), redetect_every=0)
    with pytest.raises(ValueError, match="fps"):
        FaceTracker(FakeDetector(), fps=0)
    with pytest.raises(ValueError, match="min_landmark_score"):
        FaceTracker(FakeDetector(), min_landmark_score=2)


def still_clip(n: int, seed: int = 0):
    """``n`` frames of the same face with fresh sensor-like noise on each."""
    import cv2

    image = cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)[0:256, 96:352]
    rng = np.random.default_rng(seed)
    return [np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_smoothing_reduces_jitter_on_a_still_face():
    from facelandmarks_smt import Detector

    det = Detector.from_pretrained("smtnet-300w-small", device="cpu")
    tracker = FaceTracker(det, fps=25, smoothing=SmoothingParams())
    raw, smoothed = [], []
    for frame in still_clip(8):
        (tf,) = tracker.update(frame)
        raw.append(tf.raw_landmarks)
        smoothed.append(tf.face.landmarks)
    assert tracker.detector_runs == 1

    def jitter(track):  # mean landmark movement per frame (px); the face does not move
        return float(np.linalg.norm(np.diff(np.asarray(track, np.float64), axis=0), axis=2).mean())

    # the box comes from the raw landmarks in both cases, so `raw` is exactly the unsmoothed run
    assert jitter(raw) > 0.2, "the clip must have some jitter to remove"
    assert jitter(smoothed) < 0.5 * jitter(raw)
    # smoothing must not move the face: the mean position stays within a pixel of the raw mean
    assert np.abs(np.mean(smoothed, 0) - np.mean(raw, 0)).mean() < 1.0
