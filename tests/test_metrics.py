"""Metrics and evaluation checked against hand-computed values."""

import importlib.util
import json

import numpy as np
import pytest

from facelandmarks_smt.training.evaluate import evaluate_detector, evaluate_predictions, plot_ced
from facelandmarks_smt.training.metrics import (
    INDICES_49,
    auc,
    ced_curve,
    failure_rate,
    landmark_boxes,
    nmde,
    nme,
    normalised_errors,
    summarise,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def face(scale=1.0, shift=(0.0, 0.0), seed=0):
    """A 68-point face whose outer eye corners (36, 45) are 60 * scale apart."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 100, (68, 2))
    pts[36] = (20, 40)
    pts[45] = (80, 40)
    return (pts * scale + np.asarray(shift)).astype(np.float32)


@pytest.fixture
def three_faces():
    # d = 60, 30, 120; offsets of length 3 (3-4-5 triangle scaled), 1.2 and 12 -> E 0.05, 0.04, 0.10
    gt = np.stack([face(1.0), face(0.5, (10, 5), 1), face(2.0, (3, 7), 2)])
    off = np.array([[1.8, 2.4], [0.0, 1.2], [-7.2, 9.6]], np.float32)
    pred = gt + off[:, None, :]
    return pred, gt


def test_interocular_errors_nme_nmde_fr(three_faces):
    pred, gt = three_faces
    e = normalised_errors(pred, gt)
    np.testing.assert_allclose(e, [0.05, 0.04, 0.10], rtol=1e-5)
    assert nme(e) == pytest.approx(0.19 / 3, rel=1e-5)
    assert nmde(e) == pytest.approx(0.05, rel=1e-5)
    assert failure_rate(e) == pytest.approx(1 / 3)
    assert failure_rate([0.08, 0.0801]) == 0.5  # failure is strictly above the threshold


def test_summarise_percent(three_faces):
    pred, gt = three_faces
    s = summarise(pred, gt)
    assert s["faces"] == 3 and s["norm"] == "inter-ocular"
    assert s["nme"] == pytest.approx(19 / 3, rel=1e-5)
    assert s["nmde"] == pytest.approx(5.0, rel=1e-5)
    assert s["fr8"] == pytest.approx(100 / 3)
    # AUC: (1 - .05/.08) + (1 - .04/.08) + 0 over 3 faces
    assert s["auc8"] == pytest.approx(100 * (0.375 + 0.5) / 3, rel=1e-5)
    # uniform offsets: the 49-point variant has the same error
    assert s["nme49"] == pytest.approx(s["nme"], rel=1e-5)


def test_49_point_variant_excludes_jaw_and_inner_mouth_corners():
    assert len(INDICES_49) == 49
    assert not set(range(17)) & set(INDICES_49) and 60 not in INDICES_49 and 64 not in INDICES_49
    gt = face()[None]
    pred = gt.copy()
    excluded = list(range(17)) + [60, 64]
    pred[0, excluded, 0] += 6.0  # 6 px on 19 points, d = 60
    assert normalised_errors(pred, gt)[0] == pytest.approx(19 * 6 / 68 / 60, rel=1e-6)
    assert normalised_errors(pred, gt, indices=INDICES_49)[0] == 0.0
    s = summarise(pred, gt)
    assert s["nme49"] == 0.0 and s["nme"] == pytest.approx(100 * 19 * 6 / 68 / 60, rel=1e-5)
    # normalisation comes from the full gt even when the eye corners are outside the subset
    pred2 = gt + np.float32(3.0)
    e = normalised_errors(pred2, gt, indices=[0, 1])[0]
    assert e == pytest.approx(3 * np.sqrt(2) / 60, rel=1e-6)


def test_box_normalisation():
    gt = face()[None]
    pred = gt + np.array([0.0, 6.0], np.float32)
    e = normalised_errors(pred, gt, norm="box", boxes=[[0, 0, 40, 90]])  # sqrt(40*90) = 60
    assert e[0] == pytest.approx(0.1)
    box = landmark_boxes(gt)[0]
    d = np.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    assert normalised_errors(pred, gt, norm="box")[0] == pytest.approx(6 / d, rel=1e-6)
    # box normalisation works for any number of points
    e5 = normalised_errors(pred[:, :5], gt[:, :5], norm="box", boxes=[[0, 0, 40, 90]])
    assert e5[0] == pytest.approx(0.1)


def test_visible_mask_ignores_unannotated_points():
    gt = face()[None]
    pred = gt + np.float32(0.0)
    pred[0, 0] += 1000.0  # garbage on an invisible point
    pred[0, 1, 0] += 6.0
    vis = np.ones((1, 68), bool)
    vis[0, 0] = False
    assert normalised_errors(pred, gt, visible=vis)[0] == pytest.approx(6 / 67 / 60, rel=1e-6)


def test_auc_exact_against_analytic_values():
    # CDF steps at 0, .02, .04, .06, .08 (+ one beyond): area = (1 + .75 + .5 + .25 + 0 + 0) / 6
    e = [0.0, 0.02, 0.04, 0.06, 0.08, 0.10]
    assert auc(e) == pytest.approx(2.5 / 6)
    # errors uniformly spaced over [0, 0.08): the CED is a staircase under the diagonal, AUC 1/2
    n = 1000
    u = (np.arange(n) + 0.5) * 0.08 / n
    assert auc(u) == pytest.approx(0.5, abs=1e-12)
    assert auc(u, steps=10001) == pytest.approx(0.5, abs=1e-3)  # a fine grid agrees
    assert auc([np.inf, 0.0]) == 0.5  # a miss contributes nothing
    assert auc([0.2, 0.3]) == 0.0 and auc([0.0, 0.0]) == 1.0


def test_ced_curve():
    x, y = ced_curve([0.01, 0.03, 0.03, 0.2], threshold=0.08)
    np.testing.assert_allclose(x, [0.0, 0.01, 0.03, 0.08])
    np.testing.assert_allclose(y, [0.0, 0.25, 0.75, 0.75])
    # the post-step curve integrates to the exact AUC
    area = np.sum(y[:-1] * np.diff(x)) / 0.08
    assert area == pytest.approx(auc([0.01, 0.03, 0.03, 0.2]))


def test_bad_inputs_raise():
    gt = face()[None]
    with pytest.raises(ValueError):
        normalised_errors(gt[:, :67], gt)  # shape mismatch
    with pytest.raises(ValueError):
        normalised_errors(gt[:, :19], gt[:, :19])  # inter-ocular needs 68 points
    with pytest.raises(ValueError):
        normalised_errors(gt, gt, norm="diagonal")
    with pytest.raises(ValueError):
        normalised_errors(gt, gt, norm="box", boxes=[[0, 0, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(ValueError):
        normalised_errors(np.zeros((1, 68, 3)), np.zeros((1, 68, 3)))
    with pytest.raises(ValueError):
        nme([])
    with pytest.raises(ValueError):
        evaluate_predictions(gt, gt, boxes_used="oracle")
    # another scheme is fine once its eye corners are named
    g19 = gt[:, :19].copy()
    g19[0, 6], g19[0, 11] = (0, 0), (50, 0)
    assert normalised_errors(g19 + np.float32(5), g19, eye_indices=(6, 11))[0] == pytest.approx(
        5 * np.sqrt(2) / 50, rel=1e-6
    )


def test_evaluate_predictions_writes_report_and_png(three_faces, tmp_path):
    pred, gt = three_faces
    rep = evaluate_predictions(pred, gt, out_dir=tmp_path, title="test run", extra={"ckpt": "x"},
                               baselines={"other": [0.01, 0.02, 0.09]})
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["boxes_used"] == "gt" and data["normalisation"] == "inter-ocular"
    assert data["faces"] == 3 and data["extra"] == {"ckpt": "x"}
    np.testing.assert_allclose(data["errors"], [0.05, 0.04, 0.10], rtol=1e-5)
    assert len(data["errors49"]) == 3
    assert data["metrics"]["nme"] == pytest.approx(19 / 3, rel=1e-5)
    assert set(data["metrics"]) == set(rep["metrics"]) and data["metrics"]["norm"] == "inter-ocular"
    png = (tmp_path / "ced.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
    plot_ced({"a": [0.01, 0.05], "b": [0.02]}, tmp_path / "two.png")
    assert (tmp_path / "two.png").read_bytes().startswith(PNG_SIGNATURE)


class FakeFace:
    def __init__(self, box, landmarks):
        self.box = np.asarray(box, np.float32)
        self.landmarks = np.asarray(landmarks, np.float32)


class FakeDetector:
    """Knows the answer for each image (identified by its fill value) and adds a known offset."""

    def __init__(self, gts, offset, missing=(), decoy=False):
        self.gts, self.offset, self.missing, self.decoy = gts, offset, set(missing), decoy
        self.calls = []

    def detect(self, image, boxes=None):
        k = int(image[0, 0, 0])
        self.calls.append((k, None if boxes is None else np.array(boxes)))
        pts = self.gts[k] + self.offset
        faces = []
        if self.decoy:  # another face far away, listed first
            faces.append(FakeFace([500, 500, 600, 600], pts + 500))
        if boxes is not None:
            return [FakeFace(boxes[0], pts)]
        if k in self.missing:
            return faces
        return faces + [FakeFace(landmark_boxes(pts)[0], pts)]


def fake_dataset(gts):
    return [(np.full((8, 8, 3), k, np.uint8), g, {"name": f"img{k}"}) for k, g in enumerate(gts)]


def test_evaluate_detector_gt_boxes(tmp_path):
    gts = [face(1.0), face(0.5, seed=1), face(2.0, seed=2)]  # d = 60, 30, 120
    det = FakeDetector(gts, np.array([0.0, 2.4], np.float32))
    rep = evaluate_detector(det, fake_dataset(gts), boxes="gt", out_dir=tmp_path, progress=False)
    np.testing.assert_allclose(rep["errors"], [0.04, 0.08, 0.02], rtol=1e-5)
    assert rep["metrics"]["nme"] == pytest.approx(100 * 0.14 / 3, rel=1e-5)
    assert rep["misses"] == 0 and rep["boxes_used"] == "gt"
    assert rep["ids"] == ["img0", "img1", "img2"]
    # it was given the tight gt landmark box
    k, boxes = det.calls[0]
    np.testing.assert_allclose(boxes[0], landmark_boxes(gts[0])[0], rtol=1e-6)
    assert json.loads((tmp_path / "report.json").read_text())["faces_total"] == 3
    assert (tmp_path / "ced.png").read_bytes().startswith(PNG_SIGNATURE)


def test_evaluate_detector_detector_boxes_and_misses(tmp_path):
    gts = [face(1.0), face(0.5, seed=1), face(2.0, seed=2), face(1.0, seed=3)]
    det = FakeDetector(gts, np.array([0.0, 2.4], np.float32), missing={1}, decoy=True)
    rep = evaluate_detector(det, fake_dataset(gts), boxes="detector", out_dir=tmp_path,
                            progress=False)
    assert all(b is None for _, b in det.calls)
    assert rep["misses"] == 1 and rep["miss_indices"] == [1] and rep["faces_total"] == 4
    assert rep["faces"] == 3 and rep["boxes_used"] == "detector"
    # the nearest face was matched (not the decoy), the miss was not scored as the decoy
    assert rep["errors"][1] is None
    np.testing.assert_allclose([rep["errors"][i] for i in (0, 2, 3)], [0.04, 0.02, 0.04], rtol=1e-5)
    m = rep["metrics"]
    assert m["nme"] == pytest.approx(100 * 0.10 / 3, rel=1e-5)
    assert m["fr8"] == 0.0 and m["fr8_with_misses"] == pytest.approx(25.0)
    assert m["auc8_with_misses"] == pytest.approx(100 * (0.5 + 0.75 + 0.5) / 4, rel=1e-5)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["errors"][1] is None and data["metrics"]["misses"] == 1


def test_evaluate_detector_rejects_wrong_landmark_count():
    gts = [face()]
    det = FakeDetector([gts[0][:19]], np.float32(0.0))
    with pytest.raises(ValueError):
        evaluate_detector(det, fake_dataset(gts), progress=False)


@pytest.mark.skipif(importlib.util.find_spec("dlib") is not None, reason="dlib is installed")
def test_dlib_baseline_missing_dependency_message():
    from facelandmarks_smt.training.evaluate import DlibBaseline

    with pytest.raises(ImportError, match="dlib-bin face-recognition-models"):
        DlibBaseline()


def test_dlib_baseline_api():
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed")
    from facelandmarks_smt.training.evaluate import DlibBaseline

    faces = DlibBaseline().detect(np.zeros((120, 120, 3), np.uint8), boxes=[[20, 20, 100, 100]])
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    assert faces[0].landmarks.dtype == np.float32
