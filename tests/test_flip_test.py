"""Flip test-time augmentation: mirrored predictions are mapped back (x -> S-1-x in crop pixels,
then the scheme's flip permutation) before the points are averaged."""

import numpy as np
import pytest
import torch

from facelandmarks_smt import Detector
from facelandmarks_smt.config import get_config
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.schemes import FLIP_PERMUTATION_68, mirror_points


class FixedOutput(SMTNet):
    """Ignores its input: every crop gets the same one-hot heatmaps and residuals."""

    def __init__(self, peaks: np.ndarray, residuals: np.ndarray) -> None:
        super().__init__(get_config("tiny"))
        hm = torch.zeros(1, 68, 64, 64)
        for i, (x, y) in enumerate(peaks):
            hm[0, i, y, x] = 10.0
        self.register_buffer("fixed_heatmaps", hm)
        self.register_buffer("fixed_residuals", torch.as_tensor(residuals, dtype=torch.float32)[None])

    def forward(self, x):
        b = x.shape[0]
        return [(self.fixed_heatmaps.expand(b, -1, -1, -1), self.fixed_residuals.expand(b, -1, -1))]


def layout(symmetric: bool, seed: int = 0):
    """Heatmap peaks and residuals of 68 points; ``symmetric``: the layout is its own mirror image
    under the 68-point flip permutation (a pair's x mirrored about the crop centre, same y)."""
    rng = np.random.default_rng(seed)
    peaks = rng.integers(5, 59, (68, 2))
    res = rng.uniform(-0.4, 0.4, (68, 2))
    if symmetric:
        for i, j in enumerate(FLIP_PERMUTATION_68):
            if j == i:  # on the mirror axis: heatmap x 31 + 0.5 = 31.5, crop x 127.5 = (256 - 1) / 2
                peaks[i, 0], res[i, 0] = 31, 0.5
            elif j > i:
                peaks[j] = [63 - peaks[i, 0], peaks[i, 1]]
                res[j] = [-res[i, 0], res[i, 1]]
    return peaks, res


@pytest.fixture(scope="module")
def crop():
    return np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)


def test_symmetric_output_is_unchanged_by_flip_test(crop):
    model = FixedOutput(*layout(symmetric=True))
    plain = Detector(model, device="cpu").predict_crops(crop)
    flipped, scores = Detector(model, device="cpu", flip_test=True).predict_crops(crop, return_scores=True)
    assert np.abs(mirror_points(plain, 256, FLIP_PERMUTATION_68) - plain).max() < 1e-4  # really symmetric
    np.testing.assert_allclose(flipped, plain, atol=1e-4)
    assert scores.shape == (1, 68)


def test_asymmetric_output_is_averaged_with_its_unmirrored_mirror(crop):
    model = FixedOutput(*layout(symmetric=False))
    plain = Detector(model, device="cpu").predict_crops(crop)
    flipped = Detector(model, device="cpu", flip_test=True).predict_crops(crop)
    expected = 0.5 * (plain + mirror_points(plain, 256, FLIP_PERMUTATION_68))
    np.testing.assert_allclose(flipped, expected, atol=1e-4)
    assert np.abs(flipped - plain).max() > 1.0


def test_flip_test_is_mirror_equivariant_for_a_real_network(crop):
    det = Detector.from_config("tiny", device="cpu", flip_test=True, batch_size=4)
    a = det.predict_crops(crop)
    b = det.predict_crops(np.ascontiguousarray(crop[:, :, ::-1]))
    np.testing.assert_allclose(mirror_points(b, 256, FLIP_PERMUTATION_68), a, atol=1e-3)
    assert not Detector.from_config("tiny", device="cpu").flip_test  # off by default
