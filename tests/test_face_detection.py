"""Bundled face detector: BoxAdapter maths, Haar cascade loading, input checks, a real face."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelandmarks_smt import face_detection as fd
from facelandmarks_smt.face_detection import (
    BoxAdapter,
    FaceBoxes,
    FaceDetector,
    HaarCascade,
    HaarFaceDetector,
    box_iou,
    get_face_detector,
    register_face_detector,
)

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.jpg"


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"missing test image {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def haar() -> HaarFaceDetector:
    return HaarFaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_rgb(ASTRONAUT)


# ---------------------------------------------------------------------------------- BoxAdapter


def test_adapter_apply_hand_checked():
    # raw box: centre (60, 120), size (100, 200)
    ad = BoxAdapter(scale_x=0.8, scale_y=0.9, offset_x=0.1, offset_y=-0.05)
    out = ad.apply(np.array([[10.0, 20.0, 110.0, 220.0]]))
    # centre -> (60 + 0.1*100, 120 - 0.05*200) = (70, 110); size -> (80, 180)
    np.testing.assert_allclose(out, [[30.0, 20.0, 110.0, 200.0]], atol=1e-5)
    assert out.dtype == np.float32 and out.shape == (1, 4)
    single = ad.apply([10.0, 20.0, 110.0, 220.0])
    assert single.shape == (4,)
    np.testing.assert_allclose(ad.inverse().apply(out), [[10.0, 20.0, 110.0, 220.0]], atol=1e-4)
    inv = ad.inverse()
    assert inv.scale_x == pytest.approx(1.25) and inv.offset_x == pytest.approx(-0.125)
    np.testing.assert_array_equal(BoxAdapter().apply(out), out)  # identity
    assert ad.apply(np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize("method", ["median", "lstsq"])
def test_adapter_fit_recovers_synthetic(method):
    rng = np.random.default_rng(0)
    n = 50
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(30, 300, (n, 2))
    raw = np.concatenate([xy, xy + wh], 1)
    true = BoxAdapter(scale_x=0.87, scale_y=1.13, offset_x=-0.02, offset_y=0.15)
    fitted = BoxAdapter.fit(raw, true.apply(raw).astype(np.float64), method=method)
    for k, v in true.to_dict().items():
        assert getattr(fitted, k) == pytest.approx(v, abs=1e-5), k


def test_adapter_fit_median_ignores_outliers():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 500, (41, 2))
    wh = rng.uniform(50, 200, (41, 2))
    raw = np.concatenate([xy, xy + wh], 1)
    true = BoxAdapter(0.9, 0.8, 0.0, 0.1)
    lm = true.apply(raw).astype(np.float64)
    lm[:5] += 80.0  # five badly matched pairs
    fitted = BoxAdapter.fit(raw, lm, method="median")
    assert fitted.scale_x == pytest.approx(0.9, abs=1e-5)
    assert fitted.offset_y == pytest.approx(0.1, abs=0.05)


def test_adapter_dict_round_trip_and_errors():
    ad = BoxAdapter(0.85, 0.83, -0.003, 0.15)
    d = json.loads(json.dumps(ad.to_dict()))
    assert BoxAdapter.from_dict(d) == ad
    with pytest.raises(ValueError, match="unknown BoxAdapter keys"):
        BoxAdapter.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="> 0"):
        BoxAdapter(scale_x=0.0)
    with pytest.raises(ValueError, match="pair up"):
        BoxAdapter.fit(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="unknown BoxAdapter.fit method"):
        BoxAdapter.fit([[0, 0, 1, 1]], [[0, 0, 1, 1]], method="mean")


def test_default_adapter_matches_fitted_json():
    data = json.loads(fd.HAAR_ADAPTER_PATH.read_text())
    assert BoxAdapter.from_dict(data["adapter"]) == fd.DEFAULT_HAAR_ADAPTER
    assert fd.load_haar_adapter() == fd.DEFAULT_HAAR_ADAPTER
    fit = data["fit"]
    assert all("testset" not in p for p in fit["data"])  # fitted on training folders only
    assert fit["n_faces"] > 0 and 0 < fit["metrics"]["detection_rate"] <= 1
    sha = hashlib.sha256(fd.HAAR_CASCADE_PATH.read_bytes()).hexdigest()
    assert data["cascade_sha256"] == sha


def test_box_iou_hand_checked():
    a = [[0, 0, 10, 10]]
    b = [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 1.0]])


# ------------------------------------------------------------------------------ Haar detector


def test_bundled_cascade_loads(haar):
    assert fd.HAAR_CASCADE_PATH.is_file()
    head = fd.HAAR_CASCADE_PATH.read_text(errors="replace")[:3000]
    assert "Intel License Agreement" in head  # licence travels inside the file
    casc = HaarCascade(fd.HAAR_CASCADE_PATH)
    assert (casc.win_w, casc.win_h) == (24, 24) and len(casc.stages) == 25
    assert haar.backend in ("opencv", "numpy")
    assert HaarFaceDetector(backend="numpy").backend == "numpy"


def test_blank_image_gives_empty(haar):
    for img in (np.zeros((120, 160, 3), np.uint8), np.full((40, 30, 3), 200, np.uint8),
                np.zeros((10, 10, 3), np.uint8)):
        res = haar.detect(img)
        assert isinstance(res, FaceBoxes)
        assert res.boxes.shape == (0, 4) and res.boxes.dtype == np.float32
        assert res.scores.shape == (0,) and res.scores.dtype == np.float32


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (np.zeros((50, 50, 3), np.float32), TypeError, "uint8"),
        (np.zeros((50, 50), np.uint8), ValueError, r"\(H, W, 3\)"),
        (np.zeros((50, 50, 4), np.uint8), ValueError, r"\(H, W, 3\)"),
        ([[0, 0, 0]], TypeError, "numpy.ndarray"),
        (np.zeros((0, 50, 3), np.uint8), ValueError, "empty"),
    ],
)
def test_bad_input_raises(haar, bad, exc, msg):
    with pytest.raises(exc, match=msg):
        haar.detect(bad)


def test_astronaut_one_face(haar, astronaut):
    boxes, scores = haar.detect(astronaut)
    assert boxes.shape == (1, 4) and scores.shape == (1,)
    assert scores[0] > 0
    x1, y1, x2, y2 = boxes[0]
    # Eileen Collins' face: roughly x 190..265, y 80..170 in the 512x512 image
    assert 170 < x1 < 215 and 240 < x2 < 285 and 60 < y1 < 110 and 140 < y2 < 190
    raw = haar.detect_raw(astronaut).boxes
    np.testing.assert_allclose(haar.adapter.apply(raw), boxes, atol=1e-4)


def test_big_image_detected_on_downscaled_copy(astronaut):
    det = HaarFaceDetector(max_side=512)
    small = det.detect(astronaut).boxes
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    big_boxes = det.detect(big).boxes
    assert big_boxes.shape == (1, 4)
    # pixel-centre map of a 2x upscale: x_big = 2 x + 0.5
    assert box_iou(big_boxes, small * 2 + 0.5)[0, 0] > 0.9


def test_boxes_sorted_largest_first(astronaut):
    canvas = np.full((512, 768, 3), 128, np.uint8)
    canvas[:, 256:] = astronaut  # big face on the right, a half-size copy top left
    canvas[:256, :256] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    boxes, _ = HaarFaceDetector(adapter=BoxAdapter()).detect(canvas)
    assert len(boxes) >= 2
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert np.all(np.diff(areas) <= 0)


def test_group_rectangles_neighbour_threshold():
    rects = np.array([[10, 10, 50, 50], [11, 10, 50, 50], [10, 12, 50, 50], [200, 200, 30, 30]])
    w = np.array([1.0, 3.0, 2.0, 5.0])
    r, s = HaarCascade.group_rectangles(rects, w, min_neighbors=2)
    np.testing.assert_array_equal(r, [[10, 11, 50, 50]])  # mean of the cluster, rounded
    assert s.tolist() == [3.0]  # best level weight of the cluster
    assert len(HaarCascade.group_rectangles(rects, w, min_neighbors=3)[0]) == 0


@pytest.mark.skipif(not fd.opencv_has_cascade_classifier(), reason="OpenCV without CascadeClassifier")
def test_numpy_cascade_matches_opencv(astronaut):
    gray = cv2.equalizeHist(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    cv = cv2.CascadeClassifier(str(fd.HAAR_CASCADE_PATH))
    ref, _, ref_w = cv.detectMultiScale3(gray, 1.1, 3, minSize=(32, 32), outputRejectLevels=True)
    ours, ours_w = HaarCascade(fd.HAAR_CASCADE_PATH).detect_multiscale(gray, 1.1, 3, 32)
    np.testing.assert_array_equal(np.sort(np.asarray(ref).reshape(-1, 4), 0), np.sort(ours, 0))
    np.testing.assert_allclose(np.sort(np.ravel(ref_w)), np.sort(ours_w), rtol=1e-5)


# ----------------------------------------------------------------------------------- registry


def test_registry():
    det = get_face_detector("haar", min_neighbors=4)
    assert isinstance(det, HaarFaceDetector) and det.min_neighbors == 4
    assert "haar" in fd.available_face_detectors()
    with pytest.raises(ValueError, match="unknown face detector"):
        get_face_detector("nope")

    class Fixed(FaceDetector):
        name = "fixed"

        def detect(self, image):
            fd.check_image(image)
            return FaceBoxes(np.array([[1, 2, 3, 4]], np.float32), np.ones(1, np.float32))

    register_face_detector("fixed_test", Fixed, overwrite=True)
    try:
        boxes, scores = get_face_detector("fixed_test")(np.zeros((8, 8, 3), np.uint8))
        assert boxes.tolist() == [[1, 2, 3, 4]]
        with pytest.raises(ValueError, match="already registered"):
            register_face_detector("fixed_test", Fixed)
    finally:
        fd._REGISTRY.pop("fixed_test", None)
