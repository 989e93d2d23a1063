import json

import pytest
import torch

from facelandmarks_smt import Detector
from facelandmarks_smt.config import get_config
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.weights_io import load_model, load_weights, read_metadata, save_weights, sha256_file


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return SMTNet(get_config("tiny", num_landmarks=5, training_data_licence="test")).eval()


def test_round_trip_rebuilds_identical_model(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    digest = save_weights(tiny_model, tiny_model.config, path, metadata={"metrics": {"nme": 1.5}})
    assert digest == sha256_file(path) and len(digest) == 64
    model, meta = load_model(path, num_landmarks=5, sha256=digest)
    assert model.config == tiny_model.config
    assert json.loads(meta["metrics"]) == {"nme": 1.5}
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        for (h1, r1), (h2, r2) in zip(tiny_model(x), model(x)):
            assert torch.equal(h1, h2) and torch.equal(r1, r2)


def test_half_precision_file(tmp_path, tiny_model):
    p32, p16 = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_weights(tiny_model, tiny_model.config, p32)
    save_weights(tiny_model, tiny_model.config, p16, half=True)
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    _, state, _ = load_weights(p16)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError):
        Detector(tmp_path / "nope.safetensors", device="cpu")


def test_truncated_and_garbage_files(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    save_weights(tiny_model, tiny_model.config, path)
    data = path.read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_weights(trunc)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a weights file at all")
    with pytest.raises(ValueError, match="corrupt"):
        Detector(junk, device="cpu")


def test_wrong_landmark_count_and_sha(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    save_weights(tiny_model, tiny_model.config, path)
    with pytest.raises(ValueError, match="5 landmarks, but 68"):
        Detector(path, device="cpu", num_landmarks=68)
    with pytest.raises(ValueError, match="sha256"):
        load_weights(path, sha256="0" * 64)


def test_missing_key_and_no_config(tmp_path, tiny_model):
    from safetensors.torch import save_file

    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith("coord_heads.1")}
    path = tmp_path / "missing.safetensors"
    save_weights(state, tiny_model.config, path)
    with pytest.raises(ValueError, match="missing"):
        load_model(path)
    bare = tmp_path / "bare.safetensors"
    save_file({"a": torch.zeros(2)}, str(bare))
    with pytest.raises(ValueError, match="no facelandmarks_smt model config"):
        load_weights(bare)
    wrong_shape = dict(tiny_model.state_dict())
    wrong_shape["heatmap_heads.1.bias"] = torch.zeros(7)
    p = tmp_path / "shape.safetensors"
    save_weights(wrong_shape, tiny_model.config, p)
    with pytest.raises(ValueError, match="wrong shape"):
        load_model(p)
    assert read_metadata(path)["format"] == "facelandmarks_smt"


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_weights_are_rejected_naming_file_and_tensor(tmp_path, tiny_model, bad_value):
    """Corrupt weights loaded by path must raise, never give NaN landmarks or scores silently."""
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["heatmap_heads.1.bias"][2] = bad_value
    path = tmp_path / "nan.safetensors"
    save_weights(state, tiny_model.config, path)
    with pytest.raises(ValueError, match=r"nan\.safetensors is corrupt.*NaN or inf.*heatmap_heads\.1\.bias"):
        load_weights(path)
    with pytest.raises(ValueError, match="heatmap_heads.1.bias"):
        Detector(path, device="cpu")


def test_fp16_overflow_is_caught(tmp_path, tiny_model):
    """A value too large for fp16 becomes inf in a half file: the load must say so."""
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["coord_heads.0.fc1.weight"].view(-1)[0] = 1e6
    path = tmp_path / "half.safetensors"
    save_weights(state, tiny_model.config, path, half=True)
    with pytest.raises(ValueError, match="coord_heads.0.fc1.weight"):
        load_model(path)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_files_get_ordinary_permissions(tmp_path, tiny_model, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        path = tmp_path / "best.safetensors"
        save_weights(tiny_model, tiny_model.config, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert not list(tmp_path.glob("*.tmp"))
