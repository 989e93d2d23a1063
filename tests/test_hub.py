from pathlib import Path

import numpy as np
import pytest

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.weights_io import sha256_file

REPO = Path(__file__).resolve().parent.parent


def test_registered_but_missing_weights_say_where_they_looked(monkeypatch, tmp_path):
    monkeypatch.setitem(hub.REGISTRY, "ghost", hub.PretrainedWeights("ghost", "ghost.safetensors", "0" * 64, 68, "x"))
    monkeypatch.setenv("FACELANDMARKS_SMT_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not installed; looked in"):
        Detector.from_pretrained("ghost")
    assert "ghost" not in hub.available()


def test_env_folder_is_searched_and_sha_checked(monkeypatch, tmp_path):
    det = Detector.from_config("tiny", num_landmarks=5, device="cpu")
    from facelandmarks_smt.weights_io import save_weights

    digest = save_weights(det.model, det.config, tmp_path / "mine.safetensors")
    monkeypatch.setitem(hub.REGISTRY, "mine", hub.PretrainedWeights("mine", "mine.safetensors", digest, 5, "x"))
    monkeypatch.setenv("FACELANDMARKS_SMT_WEIGHTS", str(tmp_path))
    assert "mine" in hub.available()
    assert Detector.from_pretrained("mine", device="cpu").num_landmarks == 5
    monkeypatch.setitem(hub.REGISTRY, "mine", hub.PretrainedWeights("mine", "mine.safetensors", "f" * 64, 5, "x"))
    with pytest.raises(ValueError, match="sha256"):
        Detector.from_pretrained("mine", device="cpu")


@pytest.mark.parametrize("name", sorted(hub.REGISTRY))
def test_shipped_weights_match_their_model_card(name):
    entry = hub.REGISTRY[name]
    path = REPO / "weights" / entry.filename
    if not path.is_file():
        pytest.skip(f"{entry.filename} is not in this checkout")
    assert sha256_file(path) == entry.sha256
    card = (REPO / "weights" / (Path(entry.filename).stem + ".md")).read_text()
    assert entry.sha256 in card


@pytest.mark.skipif(not hub.available(), reason="no pretrained weights installed")
def test_pretrained_landmarks_on_the_astronaut_are_a_face():
    """Real weights on a real face: the 68 points must have a face's layout."""
    det = Detector.from_pretrained(hub.available()[0], device="cpu")
    faces = det.detect(REPO / "examples" / "astronaut.jpg")
    assert len(faces) == 1
    p = faces[0].landmarks
    left_eye, right_eye = p[36:42].mean(0), p[42:48].mean(0)
    nose_tip, mouth, chin = p[30], p[48:68].mean(0), p[8]
    assert left_eye[0] < nose_tip[0] < right_eye[0]           # nose between the eyes (image x)
    assert max(left_eye[1], right_eye[1]) < nose_tip[1] < mouth[1] < chin[1]  # top to bottom
    iod = np.linalg.norm(p[36] - p[45])
    assert 30 < iod < 120                                     # a plausible eye distance in this 512 px photo
    assert faces[0].scores.mean() > 0.2
