import pytest
import torch

from facelandmarks_smt.config import ModelConfig, get_config
from facelandmarks_smt.models import SMTNet, count_parameters
from facelandmarks_smt.models.blocks import Hourglass, MultiScaleBlock

# Counted once from the SPEC architecture (stem, 2 hourglasses of depth 4 at 256/512, heads);
# a change here means the architecture changed.
PAPER_PARAMS_68 = 43_192_984


def test_multiscale_block_channels_and_identity():
    blk = MultiScaleBlock(64, 64)
    assert isinstance(blk.shortcut, torch.nn.Identity)
    assert blk.conv1[2].out_channels == 32 and blk.conv2[2].out_channels == 16 and blk.conv3[2].out_channels == 16
    y = blk(torch.randn(2, 64, 8, 8))
    assert y.shape == (2, 64, 8, 8)
    blk2 = MultiScaleBlock(32, 64)
    assert blk2(torch.randn(1, 32, 8, 8)).shape == (1, 64, 8, 8)
    with pytest.raises(ValueError):
        MultiScaleBlock(8, 10)


def test_hourglass_shapes_and_centre():
    hg = Hourglass(4, 16, 32)
    out, centre = hg(torch.randn(1, 16, 64, 64))
    assert out.shape == (1, 16, 64, 64)
    assert centre.shape == (1, 32, 4, 4)


@pytest.mark.parametrize("name", ["paper", "small", "tiny"])
@pytest.mark.parametrize("L", [68, 19, 5])
def test_output_shapes(name, L):
    cfg = get_config(name, num_landmarks=L)
    if name == "paper" and L != 68:
        cfg = cfg.replace(width=32, inner_width=64)  # keep the test fast; topology is the same
    model = SMTNet(cfg).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 256, 256))
    assert len(outs) == cfg.num_stacks == 2
    for heatmaps, residuals in outs:
        assert heatmaps.shape == (2, L, 64, 64)
        assert residuals.shape == (2, L, 2)


def test_paper_parameter_count():
    assert count_parameters(SMTNet(get_config("paper"))) == PAPER_PARAMS_68


def test_residual_head_starts_at_zero():
    model = SMTNet(get_config("tiny", num_landmarks=7)).eval()
    with torch.no_grad():
        _, res = model(torch.randn(1, 3, 256, 256))[-1]
    assert torch.count_nonzero(res) == 0


def test_wrong_input_shape_raises():
    model = SMTNet(get_config("tiny"))
    with pytest.raises(ValueError, match="expects input"):
        model(torch.randn(1, 3, 128, 128))


def test_config_validation_and_json_round_trip():
    cfg = get_config("small", num_landmarks=19, scheme="aflw-19")
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cfg.heatmap_size == 64 and cfg.centre_size == 4
    with pytest.raises(ValueError):
        get_config("huge")
    with pytest.raises(ValueError):
        ModelConfig(num_landmarks=0)
    with pytest.raises(ValueError):
        ModelConfig(input_size=250)
    with pytest.raises(ValueError):
        ModelConfig.from_dict({"num_landmarks": 68, "bogus": 1})
