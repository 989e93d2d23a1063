"""One Euro filter against values computed by hand from the formulas in Casiez et al. 2012."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelandmarks_smt.one_euro import OneEuroFilter, smoothing_factor

# With cutoff 1/(2 pi) Hz the time constant tau is 1 s, so alpha = 1 / (1 + 1/te): 1/2 for te = 1 s.
C = 1.0 / (2.0 * math.pi)


def test_smoothing_factor_by_hand():
    assert smoothing_factor(1.0, C) == pytest.approx(0.5)
    assert smoothing_factor(0.5, C) == pytest.approx(1.0 / 3.0)
    assert smoothing_factor(1.0, 1.0) == pytest.approx(1.0 / (1.0 + 1.0 / (2 * math.pi)))


def test_fixed_cutoff_is_an_exponential_average():
    # beta = 0: a plain low-pass filter with alpha = 1/2 at te = 1 s
    f = OneEuroFilter(min_cutoff=C, beta=0.0, d_cutoff=C)
    assert f(4.0, 0.0) == pytest.approx(4.0)       # first sample passes through
    assert f(0.0, 1.0) == pytest.approx(2.0)       # 0.5 * 0 + 0.5 * 4
    assert f(0.0, 2.0) == pytest.approx(1.0)
    assert f(3.0, 3.0) == pytest.approx(2.0)


def test_speed_raises_the_cutoff_by_hand():
    # min_cutoff = d_cutoff = beta = 1/(2 pi); samples 0, 2, 2 at t = 0, 1, 2.
    # t=1: dx = 2, dx_hat = 0.5*2 + 0.5*0 = 1, cutoff = C(1 + 1) -> tau = 1/2, alpha = 2/3,
    #      x_hat = 2/3 * 2 = 4/3.
    # t=2: dx = (2 - 2) / 1 = 0 (from the previous *raw* sample), dx_hat = 0.5, cutoff = 1.5 C ->
    #      tau = 2/3, alpha = 3/5, x_hat = 0.6 * 2 + 0.4 * 4/3 = 26/15.
    f = OneEuroFilter(min_cutoff=C, beta=C, d_cutoff=C)
    assert f(0.0, 0.0) == pytest.approx(0.0)
    assert f(2.0, 1.0) == pytest.approx(4.0 / 3.0)
    assert f(2.0, 2.0) == pytest.approx(26.0 / 15.0)


def test_arrays_are_filtered_per_element_and_negative_speed_counts():
    f = OneEuroFilter(min_cutoff=C, beta=C, d_cutoff=C)
    f(np.array([[0.0, 0.0], [5.0, 1.0]]), 0.0)
    out = f(np.array([[2.0, 0.0], [3.0, 1.0]]), 1.0)
    # element (0, 0) moves +2 and (1, 0) moves -2: same |speed|, same alpha 2/3
    np.testing.assert_allclose(out, [[4.0 / 3.0, 0.0], [5.0 - 4.0 / 3.0, 1.0]])


def test_uses_the_real_time_step():
    f = OneEuroFilter(min_cutoff=C, beta=0.0, d_cutoff=C)
    f(3.0, 10.0)
    assert f(0.0, 10.5) == pytest.approx(2.0)      # te = 0.5 s: alpha = 1/3 -> 2/3 * 3


def test_reset_and_bad_input():
    f = OneEuroFilter()
    f(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="timestamps must increase"):
        f(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        f(np.array([0.0, np.nan, 0.0]), 1.0)
    f.reset()
    np.testing.assert_allclose(f(np.full(4, 7.0), 0.0), 7.0)
    for kwargs in ({"min_cutoff": 0.0}, {"d_cutoff": -1.0}, {"beta": -0.1}, {"min_cutoff": float("nan")}):
        with pytest.raises(ValueError):
            OneEuroFilter(**kwargs)


def test_still_noise_is_reduced_and_a_ramp_is_followed():
    rng = np.random.default_rng(0)
    t = np.arange(200) / 30.0
    noisy = 10.0 + rng.normal(0, 1.0, t.shape)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    out = np.array([f(x, ti) for x, ti in zip(noisy, t)])
    assert np.abs(np.diff(out[20:])).mean() < 0.3 * np.abs(np.diff(noisy[20:])).mean()
    # a fast ramp: beta > 0 lags less than beta = 0
    ramp = 100.0 * t
    lag = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        lag[beta] = abs(ramp[-1] - [f(x, ti) for x, ti in zip(ramp, t)][-1])
    assert lag[1.0] < 0.2 * lag[0.0]
