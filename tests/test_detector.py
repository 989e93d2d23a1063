from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facelandmarks_smt import Detector, Face
from facelandmarks_smt.detector import resolve_device
from facelandmarks_smt.preprocess import square_box

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def det():
    return Detector.from_config("tiny", num_landmarks=68, device="cpu")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    img[60:180, 100:220] = [200, 160, 140]  # a face-coloured blob
    return img


def test_detect_with_boxes_shapes_and_range(det, image):
    boxes = np.array([[100, 60, 220, 180], [10, 10, 60, 70]], float)
    faces = det.detect(image, boxes=boxes)
    assert len(faces) == 2 and all(isinstance(f, Face) for f in faces)
    for f, b in zip(faces, boxes):
        assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
        assert f.scores.shape == (68,) and ((f.scores >= 0) & (f.scores <= 1)).all()
        cx, cy, side = square_box(b, det.config.crop_factor)
        assert (f.landmarks[:, 0] >= cx - side / 2 - 0.5).all() and (f.landmarks[:, 0] <= cx + side / 2).all()
        assert (f.landmarks[:, 1] >= cy - side / 2 - 0.5).all() and (f.landmarks[:, 1] <= cy + side / 2).all()
        np.testing.assert_array_equal(f.box, b.astype(np.float32))


def test_detect_equals_crop_then_predict(det, image):
    boxes = [[100, 60, 220, 180]]
    face = det.detect(image, boxes=boxes)[0]
    crops, mats = det.crop(image, boxes)
    pts = det.predict_crops(crops)[0]
    a = mats[0][:, :2]
    back = (pts - mats[0][:, 2]) @ np.linalg.inv(a).T
    np.testing.assert_allclose(face.landmarks, back, atol=1e-3)


def test_batch_of_one_equals_batch_of_eight(image):
    det = Detector.from_config("tiny", device="cpu", batch_size=8)
    boxes = np.array([[100 + 3 * i, 60 + 2 * i, 220 - i, 180] for i in range(8)], float)
    crops, _ = det.crop(image, boxes)
    det.batch_size = 8
    batched, s8 = det.predict_crops(crops, return_scores=True)
    det.batch_size = 1
    single, s1 = det.predict_crops(crops, return_scores=True)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    np.testing.assert_allclose(s8, s1, atol=1e-5)


def test_input_kinds_agree(det, image, tmp_path):
    box = [[100, 60, 220, 180]]
    ref = det.detect(image, boxes=box)[0].landmarks
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    np.testing.assert_allclose(det.detect(str(path), boxes=box)[0].landmarks, ref)
    np.testing.assert_allclose(det.detect(Image.fromarray(image), boxes=box)[0].landmarks, ref)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(det.detect(rgba, boxes=box)[0].landmarks, ref)
    gray = image[:, :, 0]
    assert det.detect(gray, boxes=box)[0].landmarks.shape == (68, 2)


def test_predict_crops_torch_inputs(det, image):
    crops, _ = det.crop(image, [[100, 60, 220, 180]])
    ref = det.predict_crops(crops)
    t_uint8 = torch.from_numpy(crops).permute(0, 3, 1, 2)
    np.testing.assert_allclose(det.predict_crops(t_uint8), ref, atol=1e-4)
    np.testing.assert_allclose(det.predict_crops(t_uint8.float() / 255), ref, atol=1e-3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        det.predict_crops(t_uint8.float())
    assert det.predict_crops(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0, 68, 2)


@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
    (np.zeros((10, 10, 3), np.float32), TypeError, "uint8"),
    (np.zeros((10, 10, 2), np.uint8), ValueError, "HxWx3"),
    (np.zeros((2, 10, 10, 3), np.uint8), ValueError, "HxWx3"),
    ([[1, 2], [3, 4]], TypeError, "numpy array"),
    ("/nonexistent/face.jpg", FileNotFoundError, "not found"),
])
def test_bad_images(det, bad, exc, match):
    with pytest.raises(exc, match=match):
        det.detect(bad, boxes=[[1, 1, 5, 5]])


def test_corrupt_image_file(det, tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ValueError, match="cannot read image"):
        det.detect(p, boxes=[[1, 1, 5, 5]])


@pytest.mark.parametrize("boxes, match", [
    ([[np.nan, 0, 10, 10]], "NaN"),
    ([[0, 0, np.inf, 10]], "NaN or inf"),
    ([[50, 50, 10, 60]], "inverted"),
    ([[500, 500, 600, 600]], "outside"),
    ([[-100, -100, -10, -10]], "outside"),
    ([[1, 2, 3]], "Nx4"),
])
def test_bad_boxes(det, image, boxes, match):
    with pytest.raises(ValueError, match=match):
        det.detect(image, boxes=boxes)


def test_bad_crops(det):
    with pytest.raises(ValueError, match="256"):
        det.predict_crops(np.zeros((1, 128, 128, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        det.predict_crops(np.zeros((1, 256, 256, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        det.predict_crops(torch.full((1, 3, 256, 256), float("nan")))


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Detector.from_config("tiny", device="cuda:1")


def test_config_readable_and_from_pretrained_message(det):
    assert det.num_landmarks == 68 and det.config.name == "tiny"
    assert "num_landmarks=68" in repr(det)
    with pytest.raises(ValueError, match="unknown pretrained weights name"):
        Detector.from_pretrained("smtnet-no-such-model")
    with pytest.raises(FileNotFoundError, match="not found"):
        Detector.from_pretrained("/nonexistent/model.safetensors")
    with pytest.raises(ValueError, match="5 landmarks"):
        Detector(Detector.from_config("tiny", num_landmarks=5).model, num_landmarks=68)


def test_from_config_is_deterministic():
    a = Detector.from_config("tiny", seed=3).model.state_dict()
    b = Detector.from_config("tiny", seed=3).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_detect_without_boxes_uses_bundled_face_detector():
    """The astronaut photo (public domain, committed) has one face; YuNet finds it."""
    det = Detector.from_config("tiny", device="cpu")
    faces = det.detect(REPO / "examples" / "astronaut.jpg")
    assert len(faces) == 1
    f = faces[0]
    assert 0.6 <= f.detection_score <= 1 and f.landmarks.shape == (68, 2)
    assert abs(f.angle) < 10
    x1, y1, x2, y2 = f.box
    # the face lies roughly at x 175-270, y 85-180 in the 512x512 image
    assert 190 < (x1 + x2) / 2 < 250 and 100 < (y1 + y2) / 2 < 170 and 60 < x2 - x1 < 130
    assert det.detect(np.zeros((64, 64, 3), np.uint8)) == []
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []  # no face in a 1x1 image
    assert det.detect(REPO / "examples" / "astronaut.jpg", min_face_score=0.999) == []
    with pytest.raises(ValueError, match="min_face_score"):
        det.detect(REPO / "examples" / "astronaut.jpg", min_face_score=float("nan"))
    r = repr(f)
    assert r.startswith("Face(box=[") and "detection_score=0." in r
    assert all(len(v.split(".")[1]) == 1 for v in r.split("[")[1].split("]")[0].split(", "))


def test_faces_sorted_by_detection_score_and_rotation_option():
    img = np.asarray(Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB"))
    canvas = np.full((512, 768, 3), 128, np.uint8)
    canvas[:, 256:] = img
    canvas[:160, :160] = np.asarray(Image.fromarray(img).resize((160, 160)))
    det = Detector.from_config("tiny", device="cpu")
    faces = det.detect(canvas)
    assert len(faces) >= 2
    scores = [f.detection_score for f in faces]
    assert scores == sorted(scores, reverse=True)
    assert det.face_detector.upright
    flat = Detector(det.model, device="cpu", correct_rotation=False)
    assert not flat.face_detector.upright
    assert all(f.angle == 0.0 for f in flat.detect(canvas))


def test_detector_crops_at_the_face_detectors_angle(image):
    """A face detector's angles reach crop_matrix, and landmarks map back to the image."""
    from facelandmarks_smt.face_detection import FaceBoxes, FaceDetector
    from facelandmarks_smt.preprocess import crop_matrix

    class Tilted(FaceDetector):
        def detect(self, img):
            return FaceBoxes(np.array([[100, 60, 220, 180]], np.float32), np.array([0.9], np.float32),
                             None, np.array([20.0], np.float32))

    det = Detector.from_config("tiny", device="cpu", face_detector=Tilted())
    face = det.detect(image)[0]
    assert face.angle == 20.0 and face.detection_score == pytest.approx(0.9)
    m = crop_matrix([100, 60, 220, 180], det.config.crop_factor, det.config.input_size, angle=20.0)
    from facelandmarks_smt.preprocess import warp_crop

    crop = warp_crop(image, m, det.config.input_size)
    pts = det.predict_crops(crop)[0]
    back = (pts - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
    np.testing.assert_allclose(face.landmarks, back, atol=1e-3)


def test_detect_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    det = Detector.from_config("tiny", device="cpu")
    img = np.asarray(Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB"))
    images = [img, np.ascontiguousarray(img[20:420, 40:500]), np.asarray(Image.fromarray(img).resize((384, 384)))]
    expected = [det.detect(im) for im in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(det.detect, [images[i % 3] for i in range(9)]))
    for i, faces in enumerate(results):
        exp = expected[i % 3]
        assert len(faces) == len(exp)
        for f, e in zip(faces, exp):
            np.testing.assert_allclose(f.box, e.box, atol=1e-3)
            np.testing.assert_allclose(f.landmarks, e.landmarks, atol=1e-2)


# --------------------------------------------------------- input that is not what it looks like


@pytest.mark.parametrize("img_shape, boxes, match", [
    ((1, 1, 3), [[0, 0, 100, 100]], "almost entirely outside"),       # a 1x1 image with a face box
    ((1, 1, 3), [[0, 0, 0.5, 0.5]], "too small to hold a face"),
    ((240, 320, 3), [[0.1, 0.2, 0.4, 0.6]], "normalised"),             # 0-1 coordinates
    ((240, 320, 3), [[200, 150, 80, 80]], r"\(x, y, w, h\)"),          # xywh: x2 < x1
    ((240, 320, 3), [[300, 220, 600, 520]], "almost entirely outside"),
])
def test_suspicious_boxes_raise(det, img_shape, boxes, match):
    with pytest.raises(ValueError, match=match):
        det.detect(np.zeros(img_shape, np.uint8), boxes=boxes)


@pytest.mark.parametrize("boxes, match", [
    ([[100, 60, 110, 70]], "unreliable"),                            # a 10 px face
    ([[250, 150, 400, 300]], "mostly outside"),                      # 28 % inside
    ([[100, 60, 120, 120]], r"\(x, y, w, h\)"),                      # xywh (100, 60, 20, 60)-ish: 1:3
])
def test_suspicious_boxes_warn(det, image, boxes, match):
    from facelandmarks_smt.images import FaceInputWarning

    with pytest.warns(FaceInputWarning, match=match):
        faces = det.detect(image, boxes=boxes)
    assert len(faces) == 1


def test_plausible_boxes_do_not_warn(det, image):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.detect(image, boxes=[[100, 60, 220, 180], [-20, 10, 60, 90], [280, 190, 330, 240]])


def test_bgr_array_warns_rgb_does_not():
    import warnings

    from facelandmarks_smt.images import FaceInputWarning

    det = Detector.from_config("tiny", device="cpu")
    rgb = np.asarray(Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.detect(rgb)
        det.detect(rgb[:, :, 0])  # gray is neither
    with pytest.warns(FaceInputWarning, match="BGR"):
        det.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
    with pytest.warns(FaceInputWarning, match="BGR"):
        det.detect(np.ascontiguousarray(rgb[:, :, ::-1]), boxes=[[175, 85, 270, 180]])


def test_example_script_writes_png(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "annotated.png"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "detect_landmarks.py"),
                        str(REPO / "examples" / "astronaut.jpg"), "--out", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert "1 face(s)" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
