"""SMT-Net losses (paper eq. 4-14): hand computations, gradients, stability, BICE's margin."""

import math

import numpy as np
import pytest
import torch

from facelandmarks_smt.training.losses import (
    HEATMAP_LOSSES,
    bice_loss,
    coord_loss,
    get_heatmap_loss,
    mse_loss,
    uce_loss,
)

B, L, H, W = 2, 3, 4, 5
EPS = 1e-6


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, H, W, generator=g, dtype=torch.float64) * 2.0
    q = torch.rand(B, L, H, W, generator=g, dtype=torch.float64)
    q[0, 1] = 0.0  # an all-zero target map (landmark outside the grid)
    q[1, 2, 1, 3] = 1.0  # a peak
    return x, q


# ---------------------------------------------------------------- float64 hand computations (loops)


def _ref_heatmap_loss(x, q, kind, eps=EPS, weight=None):
    x, q = x.numpy(), q.numpy()
    per = np.zeros((B, L))
    for b in range(B):
        for l in range(L):
            xs = [x[b, l, i, j] for i in range(H) for j in range(W)]
            qs = [q[b, l, i, j] for i in range(H) for j in range(W)]
            z = sum(math.exp(v) for v in xs)
            total = 0.0
            for v, t in zip(xs, qs):
                if kind == "mse":
                    total += (v - t) ** 2
                    continue
                p = math.exp(v) / z if kind in ("bice_softmax", "uce") else 1.0 / (1.0 + math.exp(-v))
                if kind == "uce":
                    total += -t * math.log(p)
                else:
                    p = min(max(p, eps), 1 - eps)
                    total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
            per[b, l] = total
    if weight is None:
        return per.mean()
    w = weight.numpy().astype(np.float64)
    return (per * w).sum() / w.sum()


LOSS_FNS = {
    "bice_softmax": lambda x, q, **k: bice_loss(x, q, mode="softmax", **k),
    "bice_sigmoid": lambda x, q, **k: bice_loss(x, q, mode="sigmoid", **k),
    "uce": uce_loss,
    "mse": mse_loss,
}


@pytest.mark.parametrize("kind", sorted(LOSS_FNS))
def test_heatmap_loss_matches_hand_computation(kind):
    x, q = _data()
    got = LOSS_FNS[kind](x, q)
    assert got.ndim == 0 and got.dtype == torch.float64
    assert got.item() == pytest.approx(_ref_heatmap_loss(x, q, kind), rel=1e-10)
    # Registry entries are the same functions.
    assert HEATMAP_LOSSES[kind](x, q).item() == pytest.approx(got.item(), rel=1e-12)


@pytest.mark.parametrize("kind", sorted(LOSS_FNS))
def test_heatmap_loss_weight_mask(kind):
    x, q = _data(1)
    weight = torch.tensor([[True, False, True], [False, True, True]])
    got = LOSS_FNS[kind](x, q, weight=weight)
    assert got.item() == pytest.approx(_ref_heatmap_loss(x, q, kind, weight=weight), rel=1e-10)
    # Masked landmarks neither count nor get gradient, even with NaN targets / huge logits there.
    x2, q2 = x.clone(), q.clone()
    q2[0, 1] = float("nan")
    x2[1, 0] = 1e4
    x2.requires_grad_(True)
    got2 = LOSS_FNS[kind](x2, q2, weight=weight)
    assert got2.item() == pytest.approx(got.item(), rel=1e-10)
    got2.backward()
    assert torch.isfinite(x2.grad).all()
    assert x2.grad[0, 1].abs().max() == 0 and x2.grad[1, 0].abs().max() == 0
    # Float weights: weighted mean; all-zero weight: 0.
    fw = torch.tensor([[0.5, 0.0, 2.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    assert LOSS_FNS[kind](x, q, weight=fw).item() == pytest.approx(_ref_heatmap_loss(x, q, kind, weight=fw), rel=1e-10)
    assert LOSS_FNS[kind](x, q, weight=torch.zeros(B, L, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize("kind", sorted(LOSS_FNS))
def test_heatmap_loss_gradcheck(kind):
    x, q = _data(2)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: LOSS_FNS[kind](v, q), (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bice_softmax_gradcheck_with_dominant_peak():
    # One pixel holds P ~ 1 - 1e-9: exercises the leave-one-out log(1 - P) branch at the argmax.
    x, q = _data(3)
    x[:, :, 2, 2] = 25.0
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: bice_loss(v, q, eps=0.0), (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bice_softmax_exact_log1mp_without_clamp():
    # eps=0 gives the exact loss even where P rounds to 1 in float64: the argmax pixel's log(1-P)
    # is logsumexp(others) - logsumexp(all), not log(1 - 1.0) = -inf.
    x = torch.tensor([[[[60.0, 0.0], [1.0, -3.0]]]], dtype=torch.float64)
    q = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
    got = bice_loss(x, q, eps=0.0).item()
    lse = torch.logsumexp(x.flatten(), 0).item()
    others = torch.logsumexp(x.flatten()[1:], 0).item()
    expected = -(others - lse) - sum(math.log1p(-math.exp(v - lse)) for v in (0.0, 1.0, -3.0))
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(60.0 - math.log(1 + math.exp(1) + math.exp(-3)), rel=1e-9)


@pytest.mark.parametrize("kind", sorted(LOSS_FNS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_logits_finite(kind, dtype):
    x, q = _data(4)
    x = (x * 5e3).clamp(-1e4, 1e4).to(dtype).requires_grad_(True)  # |x| up to 1e4
    loss = LOSS_FNS[kind](x, q.to(dtype))
    assert loss.dtype == torch.float32  # computed in float32 even from bf16
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad.float()).all()
    if kind != "mse":
        # Cross-entropy gradients stay bounded however large the logits: per pixel at most
        # ~(sum Q + 1) <= H*W + 1 before the 1/(B L) mean (softmax couples all pixels of a map).
        assert x.grad.float().abs().max() <= (H * W + 1.0) / (B * L)


def test_bice_eps_clamp_bounds_value_but_keeps_gradient():
    # A confidently wrong map: all mass on a Q = 0 pixel. Value per pixel is capped at -log(eps),
    # but the gradient still pushes the wrong pixel down (a hard clamp would give zero there).
    x = torch.full((1, 1, 2, 2), -50.0, dtype=torch.float64)
    x[0, 0, 0, 0] = 50.0
    q = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    q[0, 0, 1, 1] = 1.0
    for mode in ("softmax", "sigmoid"):
        xx = x.clone().requires_grad_(True)
        loss = bice_loss(xx, q, mode=mode, eps=1e-6)
        assert loss.item() <= 4 * -math.log(1e-6) + 1e-9
        assert loss.item() > 2 * -math.log(1e-6) - 1e-6  # both wrong pixels hit the cap
        loss.backward()
        assert xx.grad[0, 0, 0, 0] > 0.5  # descent lowers the wrong peak
        assert xx.grad[0, 0, 1, 1] < -0.5  # and raises the target pixel


def test_unknown_names():
    with pytest.raises(ValueError):
        bice_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), mode="tanh")
    with pytest.raises(KeyError, match="bice_softmax"):
        get_heatmap_loss("bce")
    assert set(HEATMAP_LOSSES) == {"bice_softmax", "bice_sigmoid", "uce", "mse"}


# ---------------------------------------------------------------- the paper's margin analysis


def _optimum(loss_fn, q1, q2):
    """argmin over 2-element softmax outputs of loss_fn, via the library loss on a 1x2 heatmap."""
    q = torch.tensor([[[[q1, q2]]]], dtype=torch.float64)
    x = torch.zeros(1, 1, 1, 2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(x, q)
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(x.detach().flatten(), 0).numpy()


UCE = uce_loss
BICE = lambda x, q: bice_loss(x, q, mode="softmax", eps=0.0)  # noqa: E731


@pytest.mark.parametrize("q1,q2", [(0.9, 0.6), (1.0, 0.3), (0.7, 0.3), (0.3, 0.1), (0.45, 0.2)])
def test_two_element_optima_and_margins_eq_9_to_14(q1, q2):
    p_uce = _optimum(UCE, q1, q2)
    p_bice = _optimum(BICE, q1, q2)
    # eq. 10 and eq. 13
    np.testing.assert_allclose(p_uce, [q1 / (q1 + q2), q2 / (q1 + q2)], atol=1e-6)
    np.testing.assert_allclose(p_bice, [(1 + q1 - q2) / 2, (1 + q2 - q1) / 2], atol=1e-6)
    m_uce, m_bice = abs(p_uce[0] - p_uce[1]), abs(p_bice[0] - p_bice[1])
    # eq. 11 and eq. 14
    assert m_uce == pytest.approx(abs(q1 - q2) / (q1 + q2), abs=1e-6)
    assert m_bice == pytest.approx(abs(q1 - q2), abs=1e-6)
    # The paper's conclusion: BICE's margin is >= UCE's exactly when q1 + q2 >= 1.
    if q1 + q2 > 1:
        assert m_bice > m_uce + 1e-3
    elif q1 + q2 == 1:
        assert m_bice == pytest.approx(m_uce, abs=1e-6)
    else:
        assert m_bice < m_uce - 1e-3


def test_bice_keeps_pushing_at_uce_optimum():
    # At UCE's optimum (p = q / (q1 + q2), zero UCE gradient) BICE's gradient is non-zero and its
    # descent direction widens the margin: raises the larger element's logit, lowers the other.
    q1, q2 = 0.9, 0.6
    q = torch.tensor([[[[q1, q2]]]], dtype=torch.float64)
    d = math.log(q1 / q2)  # logits with softmax = (q1, q2) / (q1 + q2)
    x = torch.tensor([[[[d / 2, -d / 2]]]], dtype=torch.float64, requires_grad=True)
    (g_uce,) = torch.autograd.grad(UCE(x, q), x)
    (g_bice,) = torch.autograd.grad(BICE(x, q), x)
    assert g_uce.abs().max() < 1e-12
    assert g_bice[0, 0, 0, 0] < -0.01 and g_bice[0, 0, 0, 1] > 0.01


def test_uce_blind_to_where_zero_target_mass_sits_bice_is_not():
    # "CE ... is not able to make an impact on pixels when Q = 0" (section 4): UCE only sees the
    # total probability on Q = 0 pixels, so spreading it thinly or concentrating it in one spurious
    # peak (which would steal the argmax) cost the same. BICE's (1-Q) log(1-P) side penalises the peak.
    q = torch.tensor([[[[1.0, 0.5, 0.0, 0.0]]]], dtype=torch.float64)
    p_spread = torch.tensor([0.2, 0.1, 0.35, 0.35], dtype=torch.float64)
    p_peak = torch.tensor([0.2, 0.1, 0.7 - 1e-9, 1e-9], dtype=torch.float64)  # argmax now wrong
    x_spread, x_peak = p_spread.log().view(1, 1, 1, 4), p_peak.log().view(1, 1, 1, 4)
    assert UCE(x_spread, q).item() == pytest.approx(UCE(x_peak, q).item(), rel=1e-12)
    gap = BICE(x_peak, q).item() - BICE(x_spread, q).item()
    assert gap == pytest.approx(-math.log(0.3 + 1e-9) - math.log1p(-1e-9) + 2 * math.log(0.65), rel=1e-9)
    assert gap > 0.3


def test_bice_sigmoid_inhibits_zero_target_pixels():
    # Per-pixel sigmoid: dBICE/dx_j = (P_j - Q_j) / (B L), so a Q = 0 pixel always gets pushed
    # down with strength P_j, whereas a unilateral term -Q log P has zero gradient there.
    x = torch.tensor([[[[2.0, -1.0, 0.5]]]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[[[1.0, 0.0, 0.0]]]], dtype=torch.float64)
    (g,) = torch.autograd.grad(bice_loss(x, q, mode="sigmoid", eps=0.0), x)
    torch.testing.assert_close(g, torch.sigmoid(x.detach()) - q)
    assert (g[0, 0, 0, 1:] > 0).all()
    (g_uni,) = torch.autograd.grad(-(q * torch.nn.functional.logsigmoid(x)).sum(), x)
    assert (g_uni[0, 0, 0, 1:] == 0).all()


# ---------------------------------------------------------------- coordinate loss (eq. 4, 5)


def _coord_case():
    heat = torch.zeros(2, 2, 6, 7, dtype=torch.float64)
    # argmax (x, y): [0,0] -> (3, 2), [0,1] -> (0, 5), [1,0] -> (6, 0), [1,1] -> (2, 4)
    for (b, l), (x, y) in {(0, 0): (3, 2), (0, 1): (0, 5), (1, 0): (6, 0), (1, 1): (2, 4)}.items():
        heat[b, l, y, x] = 5.0
    gt = torch.tensor([[[3.3, 1.8], [0.1, 5.9]], [[5.2, 0.4], [2.0, 4.0]]], dtype=torch.float64)
    # residuals: [0,0] both inside theta; [0,1] y over; [1,0] both over (x negative); [1,1] x over
    p = torch.tensor([[[0.2, -0.1], [0.3, 0.9]], [[-1.0, 0.7], [0.6, 0.0]]], dtype=torch.float64)
    return p, heat, gt


def _ref_coord(p, heat, gt, theta, weight=None):
    per = np.zeros(p.shape[:2])
    for b in range(p.shape[0]):
        for l in range(p.shape[1]):
            hm = heat[b, l].numpy()
            iy, ix = np.unravel_index(np.argmax(hm), hm.shape)
            tcx, tcy = gt[b, l, 0].item() - ix, gt[b, l, 1].item() - iy
            px, py = p[b, l, 0].item(), p[b, l, 1].item()
            per[b, l] = (tcx - px) ** 2 + (tcy - py) ** 2 + max(0, abs(px) - theta) + max(0, abs(py) - theta)
    if weight is None:
        return per.mean()
    w = weight.numpy().astype(np.float64)
    return (per * w).sum() / w.sum()


def test_coord_loss_hand_values():
    p, heat, gt = _coord_case()
    got = coord_loss(p, heat, gt, theta=0.5)
    assert got.item() == pytest.approx(_ref_coord(p, heat, gt, 0.5), rel=1e-12)
    # Spelled out: hinge is inactive for [0,0], active on y for [0,1], on both for [1,0], x for [1,1].
    l2 = [(0.3 - 0.2) ** 2 + (-0.2 + 0.1) ** 2, (0.1 - 0.3) ** 2 + (0.9 - 0.9) ** 2,
          (-0.8 + 1.0) ** 2 + (0.4 - 0.7) ** 2, (0.0 - 0.6) ** 2 + 0.0]
    hinge = [0.0, 0.4, 0.5 + 0.2, 0.1]
    assert got.item() == pytest.approx(sum(a + b for a, b in zip(l2, hinge)) / 4, rel=1e-12)
    # theta large: no hinge at all, pure squared L2.
    assert coord_loss(p, heat, gt, theta=5.0).item() == pytest.approx(sum(l2) / 4, rel=1e-12)


def test_coord_loss_weight_mask_and_nan_landmarks():
    p, heat, gt = _coord_case()
    w = torch.tensor([[True, False], [True, True]])
    assert coord_loss(p, heat, gt, weight=w).item() == pytest.approx(_ref_coord(p, heat, gt, 0.5, w), rel=1e-12)
    gt2 = gt.clone()
    gt2[0, 1] = float("nan")  # invisible landmark stored as NaN
    pp = p.clone().requires_grad_(True)
    loss = coord_loss(pp, heat, gt2, weight=w)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pp.grad).all()
    assert pp.grad[0, 1].abs().max() == 0


def test_coord_loss_no_gradient_to_heatmaps():
    p, heat, gt = _coord_case()
    heat = heat.clone().requires_grad_(True)
    pp = p.clone().requires_grad_(True)
    coord_loss(pp, heat, gt).backward()
    assert heat.grad is None or heat.grad.abs().max() == 0
    assert pp.grad is not None and pp.grad.abs().max() > 0


def test_coord_loss_gradcheck_residuals():
    _, heat, gt = _coord_case()
    g = torch.Generator().manual_seed(5)
    p = (torch.rand(2, 2, 2, generator=g, dtype=torch.float64) * 3 - 1.5)
    p = torch.where((p.abs() - 0.5).abs() < 0.05, p + 0.2, p).requires_grad_(True)  # away from kinks
    assert torch.autograd.gradcheck(lambda v: coord_loss(v, heat, gt), (p,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_coord_loss_bf16_residuals():
    p, heat, gt = _coord_case()
    pb = p.to(torch.bfloat16).requires_grad_(True)
    loss = coord_loss(pb, heat.to(torch.bfloat16), gt.float())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pb.grad.float()).all()


@pytest.mark.parametrize("scale", [0.5, 30.0])  # spread maps (fast single pass) and dominant peaks (exact path)
def test_bice_softmax_log1mp_both_paths_match_leave_one_out(scale):
    from facelandmarks_smt.training.losses import _log_p_and_log_1mp_softmax

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 20, generator=g, dtype=torch.float64) * scale
    log_p, log1mp = _log_p_and_log_1mp_softmax(x)
    lse = torch.logsumexp(x, -1, keepdim=True)
    expected = torch.empty_like(x)
    for j in range(x.shape[-1]):
        others = torch.cat([x[..., :j], x[..., j + 1:]], dim=-1)
        expected[..., j] = (torch.logsumexp(others, -1, keepdim=True) - lse)[..., 0]
    assert torch.allclose(log_p, x - lse)
    assert torch.allclose(log1mp, expected, rtol=1e-10, atol=1e-12)
    assert (log_p.max() > -math.log(2.0)) == (scale > 1)  # both paths really ran
