"""The One Euro filter: smooths noisy tracks without making fast motion lag.

Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for Noisy Input
in Interactive Systems", CHI 2012. A first-order low-pass filter whose cutoff rises with the
signal's speed: a still landmark gets a low cutoff (jitter removed), a moving one a high cutoff
(little lag). Per element of an array, following the authors' reference code:

    te      = t - t_prev                              (seconds)
    alpha(c) = 1 / (1 + tau / te),  tau = 1 / (2 pi c)
    dx      = (x - x_prev_raw) / te
    dx_hat  = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat_prev
    cutoff  = min_cutoff + beta * |dx_hat|
    x_hat   = alpha(cutoff) * x + (1 - alpha(cutoff)) * x_hat_prev

The first sample passes through unchanged (dx_hat starts at 0).

Parameters:
    min_cutoff: cutoff frequency (Hz) of a still signal. Lower = less jitter, more lag at slow speeds.
    beta: how fast the cutoff rises with speed (Hz per unit/s). Higher = less lag on fast motion.
    d_cutoff: cutoff frequency (Hz) of the speed estimate itself; 1 Hz is the authors' default.
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(te: float, cutoff) -> np.ndarray | float:
    """``alpha = 1 / (1 + tau / te)`` with ``tau = 1 / (2 pi cutoff)``: the low-pass weight of the
    new sample for a sampling period ``te`` (s) and a cutoff (Hz)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """Filters a stream of same-shaped arrays (e.g. ``(L, 2)`` landmarks), one filter per element.

    >>> f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    >>> smoothed = [f(x, t) for t, x in zip(times, samples)]   # times in seconds, increasing
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        for name, v in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive frequency in Hz, got {v!r}")
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._t: float | None = None
        self._x_raw: np.ndarray | None = None
        self._x_hat: np.ndarray | None = None
        self._dx_hat: np.ndarray | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        """The filtered value of sample ``x`` taken at time ``t`` (seconds, strictly increasing)."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError("OneEuroFilter got NaN or inf")
        if self._t is None:
            self._t, self._x_raw, self._x_hat = float(t), x.copy(), x.copy()
            self._dx_hat = np.zeros_like(x)
            return x.copy()
        if x.shape != self._x_raw.shape:
            raise ValueError(f"OneEuroFilter got shape {x.shape} after {self._x_raw.shape}; reset() between tracks")
        te = float(t) - self._t
        if not te > 0:
            raise ValueError(f"timestamps must increase, got {t} after {self._t}")
        dx = (x - self._x_raw) / te
        a_d = smoothing_factor(te, self.d_cutoff)
        self._dx_hat = a_d * dx + (1.0 - a_d) * self._dx_hat
        a = smoothing_factor(te, self.min_cutoff + self.beta * np.abs(self._dx_hat))
        self._x_hat = a * x + (1.0 - a) * self._x_hat
        self._t, self._x_raw = float(t), x.copy()
        return self._x_hat.copy()

    def __repr__(self) -> str:
        return f"OneEuroFilter(min_cutoff={self.min_cutoff}, beta={self.beta}, d_cutoff={self.d_cutoff})"
