import numpy as np
import pytest
import torch

from facelandmarks_smt.decode import crop_to_heatmap, decode_heatmaps, heatmap_argmax, heatmap_to_crop


def planted(b=3, l=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    peaks = torch.randint(0, size, (b, l, 2), generator=g)
    hm = torch.randn(b, l, size, size, generator=g) * 0.1
    for i in range(b):
        for j in range(l):
            x, y = peaks[i, j].tolist()
            hm[i, j, y, x] = 10.0
    return hm, peaks.float()


def test_argmax_recovers_planted_peaks():
    hm, peaks = planted()
    assert torch.equal(heatmap_argmax(hm), peaks)


def test_residuals_added_and_clamped():
    hm, peaks = planted()
    res = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1  # in [-1, 1]
    coords, scores = decode_heatmaps(hm, res, theta=0.5)
    assert torch.allclose(coords, peaks + res.clamp(-0.5, 0.5))
    inside = res.abs() <= 0.5
    assert torch.allclose(coords[inside], (peaks + res)[inside])  # unclamped where in range
    assert ((coords - peaks).abs() <= 0.5 + 1e-7).all()
    assert scores.shape == (3, 4)


def test_decode_without_residuals_and_shape_errors():
    hm, peaks = planted()
    coords, _ = decode_heatmaps(hm, None, 0.5)
    assert torch.equal(coords, peaks)
    with pytest.raises(ValueError):
        decode_heatmaps(hm, torch.zeros(3, 5, 2), 0.5)
    with pytest.raises(ValueError):
        heatmap_argmax(hm[0])


def test_confidence_sharp_vs_flat():
    sharp = torch.full((1, 1, 64, 64), -20.0)
    sharp[0, 0, 10, 20] = 20.0
    flat = torch.zeros(1, 1, 64, 64)
    flat[0, 0, 30, 30] = 1e-6  # a unique argmax away from the border
    _, s_sharp = decode_heatmaps(sharp, None, 0.5)
    _, s_flat = decode_heatmaps(flat, None, 0.5)
    assert s_sharp.item() > 0.99
    assert abs(s_flat.item() - 25 / 4096) < 1e-5  # 5x5 window of a uniform map


def test_heatmap_crop_pixel_centres():
    # heatmap pixel 0 covers crop pixels 0..3, centre 1.5; pixel 63 covers 252..255, centre 253.5
    c = torch.tensor([[[0.0, 63.0]]])
    assert torch.allclose(heatmap_to_crop(c, 4), torch.tensor([[[1.5, 253.5]]]))
    x = torch.rand(2, 5, 2) * 64
    assert torch.allclose(crop_to_heatmap(heatmap_to_crop(x, 4), 4), x, atol=1e-5)
    np.testing.assert_allclose(crop_to_heatmap(np.array([-0.5, 255.5]), 4), [-0.5, 63.5])


def _pooled_confidence(heatmaps, peaks, window=5):
    """The earlier formula: softmax mass pooled over whole heatmaps, read at the peaks."""
    import torch.nn.functional as F

    b, l, h, w = heatmaps.shape
    prob = torch.softmax(heatmaps.float().flatten(2), dim=-1).view(b * l, 1, h, w)
    mass = F.avg_pool2d(prob, window, stride=1, padding=window // 2, count_include_pad=True) * window ** 2
    idx = (peaks[..., 1].long() * w + peaks[..., 0].long()).unsqueeze(-1)
    return mass.view(b, l, h * w).gather(-1, idx).squeeze(-1).clamp_(0.0, 1.0)


@pytest.mark.parametrize("window", [1, 3, 5, 7])
def test_confidence_around_the_peak_matches_the_pooled_formula(window):
    from facelandmarks_smt.codec import heatmap_confidence

    g = torch.Generator().manual_seed(window)
    for scale, shape in [(1.0, (3, 68, 64, 64)), (8.0, (2, 19, 32, 40)), (0.01, (1, 5, 7, 6))]:
        hm = torch.randn(*shape, generator=g) * scale
        # peaks everywhere, the borders and corners included (the window then hangs outside the map)
        b, l, h, w = shape
        hm[0, 0, 0, 0] += 50 * scale
        hm[0, 1, h - 1, w - 1] += 50 * scale
        hm[0, 2, 0, w - 2] += 50 * scale
        peaks = heatmap_argmax(hm)
        got = heatmap_confidence(hm, peaks, window)
        assert got.shape == (b, l)
        torch.testing.assert_close(got, _pooled_confidence(hm, peaks, window), atol=1e-5, rtol=0)
        # any given points, not only argmaxes
        pts = torch.stack([torch.randint(0, w, (b, l), generator=g), torch.randint(0, h, (b, l), generator=g)], -1)
        torch.testing.assert_close(heatmap_confidence(hm, pts.float(), window), _pooled_confidence(hm, pts, window),
                                   atol=1e-5, rtol=0)
    bf16 = torch.randn(2, 6, 16, 16, generator=g).to(torch.bfloat16)
    torch.testing.assert_close(heatmap_confidence(bf16, heatmap_argmax(bf16), window),
                               _pooled_confidence(bf16, heatmap_argmax(bf16), window), atol=1e-5, rtol=0)


def test_confidence_window_must_be_odd():
    from facelandmarks_smt.codec import heatmap_confidence

    hm = torch.randn(1, 2, 8, 8)
    with pytest.raises(ValueError, match="odd"):
        heatmap_confidence(hm, heatmap_argmax(hm), 4)


def test_argmax_matches_torch_including_ties_and_nan():
    from facelandmarks_smt.codec import heatmap_argmax

    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        hm = torch.randn(2, 7, 9, 11, generator=g).to(dtype)
        hm[0, 0] = 0.0  # all tied: the first pixel
        hm[0, 1, 2, 3] = hm[0, 1, 5, 1] = 100.0  # two maxima: the first in row-major order
        hm[0, 2, 4, 4] = float("nan")  # NaN counts as the maximum in torch
        hm[1, 3, :, :] = float("-inf")
        w = hm.shape[-1]
        ref = hm.flatten(2).argmax(-1)
        expected = torch.stack([ref % w, ref // w], -1).float()
        got = heatmap_argmax(hm)
        assert got.dtype == torch.float32 and torch.equal(got, expected), dtype
        assert torch.equal(heatmap_argmax(hm[:, :, 1:, 1:]),  # a non-contiguous view
                           heatmap_argmax(hm[:, :, 1:, 1:].contiguous()))
    assert heatmap_argmax(torch.zeros(0, 68, 4, 4)).shape == (0, 68, 2)
    with torch.inference_mode():
        hm = torch.randn(1, 3, 5, 5, generator=g)
        assert torch.equal(heatmap_argmax(hm), heatmap_argmax(hm.clone()))
    req = torch.randn(1, 3, 5, 5, generator=g, requires_grad=True)
    assert not heatmap_argmax(req).requires_grad


def test_decode_of_channels_last_heatmaps_matches_the_earlier_decoding():
    """torch's convolutions can return channels_last heatmaps: the decoding is the same as that of the
    contiguous maps, and as the earlier one (torch argmax, pooled confidence)."""
    from facelandmarks_smt.codec import decode_heatmaps

    g = torch.Generator().manual_seed(7)
    hm = torch.randn(2, 68, 64, 64, generator=g) * 3
    res = torch.randn(2, 68, 2, generator=g)
    cl = hm.contiguous(memory_format=torch.channels_last)
    assert not cl.is_contiguous()
    c1, s1 = decode_heatmaps(cl, res, 0.8)
    c2, s2 = decode_heatmaps(hm, res, 0.8)
    assert torch.equal(c1, c2) and torch.equal(s1, s2)
    idx = hm.flatten(2).argmax(-1)
    peaks = torch.stack([idx % 64, idx // 64], -1).float()
    assert torch.equal(c1, peaks + res.clamp(-0.8, 0.8))
    torch.testing.assert_close(s1, _pooled_confidence(hm, peaks), atol=1e-5, rtol=0)


def test_logsumexp_on_cpu_matches_torch_including_edge_rows():
    """The numpy logsumexp the confidence uses on CPU (no torch threads woken) is torch's, row by row."""
    from facelandmarks_smt.codec import _logsumexp_last

    g = torch.Generator().manual_seed(0)
    rows = torch.randn(2, 68, 4096, generator=g) * 6
    edge = torch.tensor([[[-float("inf")] * 4, [float("inf"), 0, 1, 2], [float("nan"), 0, 1, 2], [1e30, 1e30, 0, 0],
                          [-1e30, -1e30, -1e30, -1e30]]])
    for x in (rows, edge, rows.double()):
        torch.testing.assert_close(_logsumexp_last(x), torch.logsumexp(x, -1, keepdim=True), rtol=1e-6, atol=1e-5,
                                   equal_nan=True)
    grad = torch.randn(1, 2, 5, requires_grad=True)
    assert _logsumexp_last(grad).requires_grad  # autograd keeps torch's
