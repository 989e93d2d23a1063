"""`Detector(..., scheme="aflw-19")`: the 19 AFLW points derived from a 68-point model's output."""

from pathlib import Path

import numpy as np
import pytest

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.schemes import MAP_68_TO_19, map_68_to_19, map_scores_68_to_19
from facelandmarks_smt.weights_io import save_weights

REPO = Path(__file__).resolve().parent.parent
ASTRONAUT_BOX = [[178, 87, 270, 178]]  # the landmark box of the one face in examples/astronaut.jpg


@pytest.fixture(scope="module")
def det68():
    return Detector.from_config("tiny", num_landmarks=68, device="cpu")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
    img[50:150, 70:170] = [200, 160, 140]
    return img


def test_aflw19_is_the_mapping_of_the_68_points(det68, image):
    boxes = [[70, 50, 170, 150], [20, 20, 90, 100]]
    det19 = Detector(det68.model, device="cpu", scheme="aflw-19")
    assert det19.scheme == "aflw-19" and det68.scheme == "300w-68"
    faces68, faces19 = det68.detect(image, boxes=boxes), det19.detect(image, boxes=boxes)
    for f68, f19 in zip(faces68, faces19):
        assert f19.landmarks.shape == (19, 2) and f19.scores.shape == (19,) and len(f19) == 19
        assert f19.landmarks.dtype == np.float32 and f19.scores.dtype == np.float32
        np.testing.assert_allclose(f19.landmarks, map_68_to_19(f68.landmarks), rtol=0, atol=1e-4)
        np.testing.assert_allclose(f19.landmarks[13], f68.landmarks[30], atol=1e-4)           # nose tip
        np.testing.assert_allclose(f19.landmarks[7], f68.landmarks[36:42].mean(0), atol=1e-4)  # eye centre
        np.testing.assert_allclose(f19.scores[7], f68.scores[36:42].mean(), atol=1e-6)
        np.testing.assert_allclose(f19.scores[18], f68.scores[8], atol=1e-6)
        np.testing.assert_array_equal(f19.box, f68.box)
    assert "aflw-19" in repr(det19)


@pytest.mark.parametrize("alias", ["aflw", "19", 19, "AFLW-19"])
def test_scheme_aliases(det68, alias):
    assert Detector(det68.model, device="cpu", scheme=alias).scheme == "aflw-19"


def test_49_points_come_from_the_one_scheme_conversion(det68, image):
    # Detector and `detect --scheme` share schemes.scheme_conversion: 68 points also give 300w-49
    from facelandmarks_smt.schemes import INDICES_49

    det49 = Detector(det68.model, device="cpu", scheme="300w-49")
    assert det49.scheme == "300w-49"
    box = [[60.0, 60.0, 190.0, 190.0]]
    f68, f49 = det68.detect(image, boxes=box)[0], det49.detect(image, boxes=box)[0]
    np.testing.assert_array_equal(f49.landmarks, f68.landmarks[list(INDICES_49)])
    np.testing.assert_array_equal(f49.scores, f68.scores[list(INDICES_49)])


def test_schemes_that_cannot_be_given(det68):
    with pytest.raises(ValueError, match="unknown landmark scheme"):
        Detector(det68.model, device="cpu", scheme="afwl-19")
    five = Detector.from_config("tiny", num_landmarks=5, device="cpu")
    with pytest.raises(ValueError, match="cannot be given by this model"):
        Detector(five.model, device="cpu", scheme="aflw-19")


def test_scheme_from_a_weights_path(tmp_path, det68, image):
    path = tmp_path / "m.safetensors"
    save_weights(det68.model, det68.config, path)
    faces = Detector(path, device="cpu", scheme="aflw-19").detect(image, boxes=[[70, 50, 170, 150]])
    assert faces[0].landmarks.shape == (19, 2)


def test_map_scores_68_to_19_checks_shape():
    s = np.arange(2 * 68, dtype=np.float32).reshape(2, 68)
    out = map_scores_68_to_19(s)
    assert out.shape == (2, 19)
    assert out[1, 16] == np.mean([s[1, i] for i in MAP_68_TO_19[16]])
    with pytest.raises(ValueError, match=r"\(\.\.\., 68\)"):
        map_scores_68_to_19(np.zeros(19))


@pytest.mark.skipif("smtnet-300w-small" not in hub.available(), reason="shipped weights not installed")
def test_pretrained_aflw19_on_the_astronaut_is_a_face():
    det = Detector.from_pretrained("smtnet-300w-small", device="cpu", scheme="aflw-19")
    p = det.detect(REPO / "examples" / "astronaut.jpg", boxes=ASTRONAUT_BOX)[0].landmarks
    assert p.shape == (19, 2)
    brows, eyes, nose, mouth, chin = p[0:6, 1].mean(), p[6:12, 1].mean(), p[13, 1], p[16, 1], p[18, 1]
    assert brows < eyes < nose < mouth < chin                       # top to bottom
    assert p[6, 0] < p[7, 0] < p[8, 0] < p[9, 0] < p[10, 0] < p[11, 0]  # eye points left to right
    assert p[15, 0] < p[16, 0] < p[17, 0] and p[12, 0] < p[13, 0] < p[14, 0]
