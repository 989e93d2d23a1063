"""Weight interpolation between two fine-tunings (WiSE-FT): `training.interpolate` and the
``interpolate`` command."""

import json

import pytest
import torch

from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.training.cli import main
from facelandmarks_smt.training.interpolate import average_states, interpolate_state
from facelandmarks_smt.weights_io import load_weights, read_metadata, save_weights
from test_trainer import micro_model


def test_interpolation_is_the_straight_line_and_keeps_integer_counters():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, -2.0]), "n": torch.tensor(7)}
    assert torch.equal(interpolate_state(a, b, 0.25)["w"], torch.tensor([1.0, 1.0]))
    assert torch.equal(interpolate_state(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate_state(a, b, 1.0)["w"], b["w"])
    assert interpolate_state(a, b, 0.5)["n"].item() == 7  # BatchNorm's counter: not averaged


@pytest.mark.parametrize("bad, match", [({"w": torch.zeros(3), "n": torch.tensor(1)}, "shape"),
                                        ({"v": torch.zeros(2), "n": torch.tensor(1)}, "different tensors")])
def test_interpolation_refuses_different_networks(bad, match):
    a = {"w": torch.zeros(2), "n": torch.tensor(1)}
    with pytest.raises(ValueError, match=match):
        interpolate_state(a, bad, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_state(a, a, 1.5)


def test_interpolate_command_writes_loadable_weights_with_their_sources(tmp_path):
    cfg = micro_model()
    torch.manual_seed(0)
    m0, m1 = SMTNet(cfg), SMTNet(cfg)
    save_weights(m0, cfg, tmp_path / "a.safetensors")
    save_weights(m1, cfg, tmp_path / "b.safetensors")
    assert main(["interpolate", "--start", str(tmp_path / "a.safetensors"), "--tuned", str(tmp_path / "b.safetensors"),
                 "--alpha", "0.5", "--out", str(tmp_path / "mid.safetensors")]) == 0
    _, state, _ = load_weights(tmp_path / "mid.safetensors")
    k = next(k for k, v in m0.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    assert torch.allclose(state[k], (m0.state_dict()[k] + m1.state_dict()[k]) / 2, atol=1e-6)
    src = json.loads(read_metadata(tmp_path / "mid.safetensors")["interpolated"])
    assert src["alpha"] == 0.5 and len(src["start_sha256"]) == 64
    # another architecture: one clear error line, exit code 2
    save_weights(SMTNet(micro_model(width=16)), micro_model(width=16), tmp_path / "c.safetensors")
    assert main(["interpolate", "--start", str(tmp_path / "a.safetensors"), "--tuned", str(tmp_path / "c.safetensors"),
                 "--alpha", "0.5", "--out", str(tmp_path / "x.safetensors")]) == 2


def test_average_states_is_the_uniform_mean_and_keeps_counters():
    a = {"w": torch.tensor([0.0, 3.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([1.0, 0.0]), "n": torch.tensor(9)}
    c = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(11)}
    out = average_states([a, b, c])
    assert torch.equal(out["w"], torch.tensor([1.0, 1.0])) and out["n"].item() == 7
    with pytest.raises(ValueError, match="other tensors"):
        average_states([a, {"w": torch.zeros(2)}])
    with pytest.raises(ValueError, match="shape"):
        average_states([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])
    with pytest.raises(ValueError, match="at least one"):
        average_states([])


def test_interpolate_command_soups_several_fine_tunings(tmp_path):
    cfg = micro_model()
    torch.manual_seed(0)
    ms = [SMTNet(cfg) for _ in range(3)]
    for i, m in enumerate(ms):
        save_weights(m, cfg, tmp_path / f"{i}.safetensors")
    assert main(["interpolate", "--start", str(tmp_path / "0.safetensors"), "--tuned", str(tmp_path / "1.safetensors"),
                 str(tmp_path / "2.safetensors"), "--alpha", "0.5", "--out", str(tmp_path / "soup.safetensors")]) == 0
    _, state, _ = load_weights(tmp_path / "soup.safetensors")
    k = next(k for k, v in ms[0].state_dict().items() if v.is_floating_point() and v.numel() > 1)
    s = [m.state_dict()[k] for m in ms]
    assert torch.allclose(state[k], 0.5 * s[0] + 0.25 * s[1] + 0.25 * s[2], atol=1e-6)
    src = json.loads(read_metadata(tmp_path / "soup.safetensors")["interpolated"])
    assert len(src["tuned"]) == 2 and len(src["tuned_sha256"]) == 2
