"""The landmark drawing used by the CLI and the examples."""

from __future__ import annotations

import numpy as np
import pytest

from facelandmarks_smt.drawing import draw_landmarks, landmark_groups


@pytest.mark.parametrize("n", [68, 49, 19])
def test_groups_cover_every_point_once(n):
    idx = [i for _, group, _ in landmark_groups(n) for i in group]
    assert sorted(idx) == list(range(n))


def test_unknown_scheme_is_dots_only():
    assert landmark_groups(7) == ()


def face_points(cx, cy, size, n=68, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([cx + rng.uniform(-size / 2, size / 2, n), cy + rng.uniform(-size / 2, size / 2, n)], 1)


def test_draws_on_a_copy_near_the_points():
    image = np.full((400, 400, 3), 90, np.uint8)
    pts = face_points(200, 200, 60)
    out = draw_landmarks(image, [pts], inset=False)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == 90).all()  # the input is untouched
    changed = np.argwhere((out != 90).any(2))
    assert len(changed) > 68
    # everything drawn is within a few pixels of the face's points (no box given, no inset)
    lo, hi = pts.min(0) - 4, pts.max(0) + 4
    assert (changed[:, 1] >= lo[0]).all() and (changed[:, 1] <= hi[0]).all()
    assert (changed[:, 0] >= lo[1]).all() and (changed[:, 0] <= hi[1]).all()


def test_inset_for_a_small_face_not_for_a_big_one():
    image = np.full((400, 400, 3), 90, np.uint8)
    pts = face_points(100, 100, 40)
    small, plain = draw_landmarks(image, [pts]), draw_landmarks(image, [pts], inset=False)
    # a 200 px inset (half the short side) in the first corner that hides no face: top right
    changed = np.argwhere((small != plain).any(2))
    assert changed[:, 0].min() == 0 and changed[:, 1].max() == 399
    inset = small[:200, 200:]
    assert (inset != 90).any(2).mean() > 0.05  # the magnified face: lines and dots
    # the face itself is left as drawn without the inset, apart from the outline of the inset's source
    assert (small[90:111, 90:111] == plain[90:111, 90:111]).all()
    big = draw_landmarks(image, [face_points(200, 200, 300)])
    without = draw_landmarks(image, [face_points(200, 200, 300)], inset=False)
    assert (big == without).all()


def test_bad_input():
    with pytest.raises(ValueError, match="uint8 RGB"):
        draw_landmarks(np.zeros((10, 10), np.uint8), [])
    with pytest.raises(ValueError, match=r"\(L, 2\)"):
        draw_landmarks(np.zeros((10, 10, 3), np.uint8), [np.zeros((5, 3))])
