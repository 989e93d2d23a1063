"""YuNet on OpenVINO (`yunet_openvino`, ``YuNetFaceDetector(runtime="openvino")``): OpenCV's
``FaceDetectorYN`` post-processing re-written in numpy, checked by hand on made-up network outputs and
against OpenCV itself on real images (several faces, sizes that are not multiples of 32, no face)."""

import pickle
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelandmarks_smt.face_detection import YuNetFaceDetector
from facelandmarks_smt.images import load_image
from facelandmarks_smt.yunet_openvino import decode_yunet, padded_rgb, padded_size, yunet_blob

REPO = Path(__file__).resolve().parent.parent


def empty_outputs(pad_w: int, pad_h: int) -> dict:
    out = {}
    for s in (8, 16, 32):
        n = (pad_w // s) * (pad_h // s)
        out.update({f"cls_{s}": np.zeros((1, n, 1), np.float32), f"obj_{s}": np.zeros((1, n, 1), np.float32),
                    f"bbox_{s}": np.zeros((1, n, 4), np.float32), f"kps_{s}": np.zeros((1, n, 10), np.float32)})
    return out


def test_padding_and_blob():
    assert padded_size(64, 64) == (64, 64) and padded_size(65, 33) == (96, 64) and padded_size(1, 1) == (32, 32)
    bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    blob = yunet_blob(bgr)
    assert blob.shape == (1, 3, 32, 32) and blob.dtype == np.float32
    np.testing.assert_array_equal(blob[0, :, :2, :3], bgr.transpose(2, 0, 1))
    assert blob[0, :, 2:, :].sum() == 0 and blob[0, :, :, 3:].sum() == 0
    rgb = padded_rgb(bgr[:, :, ::-1])  # the OpenVINO model's input: padded uint8 RGB, NHWC
    assert rgb.shape == (1, 32, 32, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, :2, :3, ::-1].transpose(2, 0, 1), blob[0, :, :2, :3])
    assert rgb[0, 2:].sum() == 0 and rgb[0, :, 3:].sum() == 0


def test_decode_by_hand():
    out = empty_outputs(64, 64)  # stride 16: a 4 x 4 grid
    idx = 1 * 4 + 2  # row 1, column 2
    out["cls_16"][0, idx, 0], out["obj_16"][0, idx, 0] = 0.81, 1.7  # obj is clipped to 1
    out["bbox_16"][0, idx] = [0.5, 0.25, np.log(2.0), np.log(3.0)]
    out["kps_16"][0, idx] = [0.0, 0.0, 1.0, 0.5, -0.5, 1.0, 0.25, 0.25, 2.0, -1.0]
    rows = decode_yunet(out, 64, 64, 0.5, 0.3, 10)
    assert rows.shape == (1, 15) and rows.dtype == np.float32
    # centre ((2, 1) + (0.5, 0.25)) * 16 = (40, 20), size (2, 3) * 16 = (32, 48)
    np.testing.assert_allclose(rows[0, :4], [24.0, -4.0, 32.0, 48.0], atol=1e-5)
    kps = (np.array([[0, 0], [1, 0.5], [-0.5, 1], [0.25, 0.25], [2, -1]]) + [2, 1]) * 16
    np.testing.assert_allclose(rows[0, 4:14], kps.reshape(-1), atol=1e-5)
    assert rows[0, 14] == pytest.approx(0.9)
    # under the threshold: nothing; two overlapping anchors: NMS keeps the better one; top_k
    assert len(decode_yunet(out, 64, 64, 0.95, 0.3, 10)) == 0
    out["cls_16"][0, idx + 1, 0], out["obj_16"][0, idx + 1, 0] = 0.64, 1.0  # score 0.8, next column
    out["bbox_16"][0, idx + 1] = [-0.5, 0.25, np.log(2.0), np.log(3.0)]  # the same box
    kept = decode_yunet(out, 64, 64, 0.5, 0.3, 10)
    assert len(kept) == 1 and kept[0, 14] == pytest.approx(0.9)
    out["bbox_16"][0, idx + 1, 0] = 3.0  # far apart now: both kept, best first; top_k 1 keeps one
    both = decode_yunet(out, 64, 64, 0.5, 0.3, 10)
    assert len(both) == 2 and both[0, 14] > both[1, 14]
    assert len(decode_yunet(out, 64, 64, 0.5, 0.3, 1)) == 1


@pytest.fixture(scope="module")
def detectors():
    pytest.importorskip("openvino")
    return YuNetFaceDetector(runtime="opencv"), YuNetFaceDetector(runtime="openvino", threads=1)


def scenes():
    face = load_image(REPO / "examples" / "astronaut.jpg")
    yield "astronaut", face
    canvas = np.full((413, 707, 3), 90, np.uint8)  # not multiples of 32; three faces at three sizes
    for (x, y), scale in (((10, 10), 0.5), ((300, 40), 0.8), ((520, 250), 0.3)):
        small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = min(small.shape[0], 413 - y), min(small.shape[1], 707 - x)
        canvas[y:y + h, x:x + w] = small[:h, :w]
    yield "three faces", canvas
    yield "noise", np.random.default_rng(0).integers(0, 255, (97, 130, 3), dtype=np.uint8)


def test_openvino_finds_what_opencv_finds(detectors):
    cv, ov = detectors
    assert (cv.runtime, ov.runtime) == ("opencv", "openvino")
    counts = []
    for name, image in scenes():
        a, b = cv.detect_raw(image), ov.detect_raw(image)
        assert len(a.boxes) == len(b.boxes), name
        counts.append(len(a.boxes))
        np.testing.assert_allclose(b.boxes, a.boxes, atol=0.05, err_msg=name)
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=0.05, err_msg=name)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3, err_msg=name)
        full_a, full_b = cv.detect(image), ov.detect(image)  # adapters and roll on top: the same too
        np.testing.assert_allclose(full_b.boxes, full_a.boxes, atol=0.1, err_msg=name)
        np.testing.assert_allclose(full_b.angles, full_a.angles, atol=1e-3, err_msg=name)
    assert counts[0] >= 1 and counts[1] >= 2 and counts[2] == 0


def test_openvino_detector_is_thread_safe_and_picklable(detectors):
    _, ov = detectors
    image = dict(scenes())["three faces"]
    want = ov.detect_raw(image).boxes
    got, errors = [], []

    def work():
        try:
            for _ in range(3):
                got.append(ov.detect_raw(image).boxes)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 12 and all(np.array_equal(g, want) for g in got)
    clone = pickle.loads(pickle.dumps(ov))
    assert clone.runtime == "openvino" and np.array_equal(clone.detect_raw(image).boxes, want)


def test_runtime_and_threads_are_checked():
    with pytest.raises(ValueError, match="runtime"):
        YuNetFaceDetector(runtime="tensorrt")
    with pytest.raises(ValueError, match="threads"):
        YuNetFaceDetector(threads=0)
    assert YuNetFaceDetector(runtime="opencv").runtime == "opencv"


def test_openvino_compiles_a_size_that_keeps_coming_and_keeps_a_few(detectors, monkeypatch):
    """A padded size seen `STATIC_AFTER` times gets a model compiled for it alone (it agrees with the dynamic
    model); at most `MAX_STATIC_SIZES` are kept, the least recently used dropped."""
    from facelandmarks_smt import yunet_openvino

    _, ov = detectors
    image = dict(scenes())["three faces"]
    runtime = yunet_openvino.YuNetOpenVINO(ov.model_path, threads=1)
    monkeypatch.setattr(yunet_openvino, "MAX_STATIC_SIZES", 2)
    first = runtime.detect(image, 0.5, 0.3, 50)
    assert runtime._static == {}
    for _ in range(yunet_openvino.STATIC_AFTER - 1):
        again = runtime.detect(image, 0.5, 0.3, 50)
    size = padded_size(image.shape[1], image.shape[0])[::-1]
    assert list(runtime._static) == [size]
    np.testing.assert_allclose(again, first, atol=1e-3)
    for side in (96, 128, 160):  # three more sizes, each seen enough: the oldest two are dropped
        small = np.ascontiguousarray(image[:side, :side])
        for _ in range(yunet_openvino.STATIC_AFTER):
            runtime.detect(small, 0.5, 0.3, 50)
    assert list(runtime._static) == [(128, 128), (160, 160)]
