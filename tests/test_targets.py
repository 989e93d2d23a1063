"""Gaussian heatmap targets (paper eq. 7) on the pixel-centre convention of docs/CONVENTIONS.md."""

import math

import numpy as np
import pytest
import torch

from facelandmarks_smt.training.targets import gaussian_heatmaps


def test_peak_is_one_at_integer_centre_and_row_column_order():
    pts = torch.tensor([[[5.0, 9.0], [0.0, 0.0]]])  # (x, y)
    q = gaussian_heatmaps(pts, 16, sigma=2.0)
    assert q.shape == (1, 2, 16, 16)
    # Pixel [row i, col j] has centre (x=j, y=i): the peak of (x=5, y=9) is at row 9, column 5.
    assert q[0, 0, 9, 5].item() == 1.0
    assert q[0, 0].flatten().argmax().item() == 9 * 16 + 5
    assert q[0, 1, 0, 0].item() == 1.0
    assert q.max().item() == 1.0 and q.min().item() >= 0.0


def test_value_at_distance_one_and_matches_formula():
    sigma = 1.5
    pts = torch.tensor([[[7.0, 6.0]]], dtype=torch.float64)
    q = gaussian_heatmaps(pts, 12, sigma)[0, 0]
    expected = math.exp(-1.0 / (2 * sigma**2))
    for di, dj in [(0, 1), (0, -1), (1, 0), (-1, 0)]:
        assert q[6 + di, 7 + dj].item() == pytest.approx(expected, rel=1e-12)
    # Whole map against the per-pixel definition exp(-d^2 / 2 sigma^2).
    i, j = np.mgrid[0:12, 0:12]
    ref = np.exp(-((j - 7.0) ** 2 + (i - 6.0) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(q.numpy(), ref, rtol=1e-12, atol=1e-300)


def test_subpixel_centre_recovered_by_weighted_centroid():
    pts = torch.tensor([[[20.3, 31.7], [40.55, 12.125]]], dtype=torch.float32)
    q = gaussian_heatmaps(pts, 64, sigma=2.0).double()
    ys, xs = torch.meshgrid(torch.arange(64.0, dtype=torch.float64), torch.arange(64.0, dtype=torch.float64), indexing="ij")
    mass = q.sum(dim=(-1, -2))
    cx = (q * xs).sum(dim=(-1, -2)) / mass
    cy = (q * ys).sum(dim=(-1, -2)) / mass
    np.testing.assert_allclose(torch.stack([cx, cy], -1).numpy(), pts.double().numpy(), atol=1e-3)


def test_symmetric_about_centre():
    q = gaussian_heatmaps(torch.tensor([[[10.0, 10.0]]]), 21, sigma=3.0)[0, 0]
    assert torch.equal(q, q.flip(0))
    assert torch.equal(q, q.flip(1))
    assert torch.equal(q, q.t())
    # Half-pixel centre: symmetric about the pixel boundary between columns 4 and 5.
    q2 = gaussian_heatmaps(torch.tensor([[[4.5, 4.5]]]), 10, sigma=2.0)[0, 0]
    torch.testing.assert_close(q2, q2.flip(1), rtol=0, atol=1e-7)
    torch.testing.assert_close(q2, q2.flip(0), rtol=0, atol=1e-7)


def test_invisible_and_nonfinite_landmarks_give_zero_maps():
    pts = torch.tensor([[[3.0, 4.0], [5.0, 5.0], [float("nan"), float("nan")]], [[1.0, 1.0], [2.0, 2.0], [6.0, 6.0]]])
    vis = torch.tensor([[True, False, True], [True, True, False]])
    q = gaussian_heatmaps(pts, 8, sigma=1.0, visible=vis)
    assert torch.isfinite(q).all()
    assert q[0, 1].abs().sum() == 0 and q[1, 2].abs().sum() == 0
    assert q[0, 2].abs().sum() == 0  # NaN point: treated as invisible
    assert q[0, 0, 4, 3] == 1.0 and q[1, 0, 1, 1] == 1.0 and q[1, 1, 2, 2] == 1.0


def test_non_square_size_and_outside_point():
    q = gaussian_heatmaps(torch.tensor([[[-2.0, 3.0]]]), (6, 9), sigma=1.0)
    assert q.shape == (1, 1, 6, 9)
    # Outside the grid: only the in-grid tail remains, maximal at the nearest column.
    assert q[0, 0, 3, 0].item() == pytest.approx(math.exp(-4 / 2))
    assert q[0, 0].flatten().argmax().item() == 3 * 9 + 0
