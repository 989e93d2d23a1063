"""Landmark schemes: mirror permutations must be right, or flip augmentation swaps sides."""

import numpy as np
import pytest

from facelandmarks_smt.schemes import (
    FLIP_PERMUTATION_19,
    FLIP_PERMUTATION_68,
    INDICES_49,
    SCHEMES,
    LandmarkScheme,
    get_scheme,
    map_68_to_19,
    mirror_points,
)

W = 200  # synthetic image width; the symmetry axis is x = (W - 1) / 2


def _mirror_x(x):
    return (W - 1) - x


def symmetric_face_68() -> np.ndarray:
    """A 68-point face that is exactly left-right symmetric about x = (W-1)/2.

    Image-left points are placed by hand; image-right points are their mirror images following
    the iBUG anatomy (written independently of FLIP_PERMUTATION_68): the jaw runs left to right,
    brows outer->inner then inner->outer, eyes clockwise from the left outer corner, lips clockwise.
    """
    c = (W - 1) / 2.0
    p = np.full((68, 2), np.nan)
    # jaw 0..16 left to right along a U, chin (8) on the axis
    for i in range(17):
        t = (i - 8) / 8.0
        p[i] = (c + 80 * t, 100 + 60 * (1 - t * t) ** 0.5)
    # brows: 17..21 left brow outer->inner; 22..26 right brow inner->outer
    for k in range(5):
        p[17 + k] = (c - 70 + 12 * k, 60 - 3 * k)
        p[26 - k] = (_mirror_x(p[17 + k, 0]), p[17 + k, 1])
    # nose bridge 27..30 on the axis; base 31..35 left to right, 33 on the axis
    for k in range(4):
        p[27 + k] = (c, 80 + 10 * k)
    for k in range(5):
        p[31 + k] = (c - 20 + 10 * k, 125 + (2 if k == 2 else 0))
    # left eye 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid (clockwise)
    left_eye = [(c - 60, 80), (c - 50, 75), (c - 40, 75), (c - 30, 80), (c - 40, 85), (c - 50, 85)]
    for k, q in enumerate(left_eye):
        p[36 + k] = q
    # right eye 42 inner corner, 43-44 upper lid, 45 outer corner, 46-47 lower lid (clockwise)
    p[42] = (_mirror_x(p[39, 0]), p[39, 1])
    p[43] = (_mirror_x(p[38, 0]), p[38, 1])
    p[44] = (_mirror_x(p[37, 0]), p[37, 1])
    p[45] = (_mirror_x(p[36, 0]), p[36, 1])
    p[46] = (_mirror_x(p[41, 0]), p[41, 1])
    p[47] = (_mirror_x(p[40, 0]), p[40, 1])
    # outer lips: 48 left corner, 49..53 upper left to right, 54 right corner, 55..59 lower right to left
    for k in range(7):
        p[48 + k] = (c - 30 + 10 * k, 150 - (5 if 0 < k < 6 else 0))
    for k in range(5):  # 55 is under 53, 59 under 49
        p[55 + k] = (p[53 - k, 0], 160)
    # inner lips: 60 left corner, 61..63 upper, 64 right corner, 65..67 lower right to left
    for k in range(5):
        p[60 + k] = (c - 20 + 10 * k, 152)
    for k in range(3):
        p[65 + k] = (p[63 - k, 0], 156)
    assert not np.isnan(p).any()
    return p


def test_68_permutation_is_involution_and_matches_known_pairs():
    perm = np.array(FLIP_PERMUTATION_68)
    assert sorted(perm) == list(range(68))
    assert (perm[perm] == np.arange(68)).all()
    for a, b in [(0, 16), (8, 8), (17, 26), (21, 22), (27, 27), (30, 30), (31, 35), (33, 33),
                 (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
                 (48, 54), (51, 51), (55, 59), (57, 57), (60, 64), (62, 62), (65, 67), (66, 66)]:
        assert perm[a] == b and perm[b] == a


def test_mirroring_symmetric_face_is_identity():
    face = symmetric_face_68()
    assert np.allclose(get_scheme("300w-68").mirror(face, W), face)
    # and without the permutation it is not (so the test has teeth)
    assert not np.allclose(mirror_points(face, W, range(68)), face)


def test_mirror_batches_and_image_pixels():
    face = symmetric_face_68()
    batch = np.stack([face, face + [1.0, 0.0]])
    out = mirror_points(batch, W, FLIP_PERMUTATION_68)
    assert out.shape == (2, 68, 2)
    # shifting right by 1 px, then mirroring, shifts left by 1 px
    assert np.allclose(out[1], face - [1.0, 0.0])
    # pixel-centre convention: the pixel at x=0 lands on x=W-1 of np.fliplr(image)
    img = np.zeros((5, W), np.uint8)
    img[2, 3] = 255
    pt = np.zeros((68, 2))
    pt[0] = (3, 2)
    m = mirror_points(pt, W, FLIP_PERMUTATION_68)
    x, y = m[16]
    assert img[:, ::-1][int(y), int(x)] == 255


def test_19_and_49_permutations_mirror_mapped_faces():
    face = symmetric_face_68()
    f19 = map_68_to_19(face)
    assert np.allclose(get_scheme("aflw-19").mirror(f19, W), f19)
    f49 = face[list(INDICES_49)]
    s49 = get_scheme(49)
    assert np.allclose(s49.mirror(f49, W), f49)
    assert s49.eye_corner_indices == (INDICES_49.index(36), INDICES_49.index(45))
    for perm in (FLIP_PERMUTATION_19, s49.flip_permutation):
        perm = np.asarray(perm)
        assert (perm[perm] == np.arange(len(perm))).all()


def test_indices_49():
    assert len(INDICES_49) == 49
    assert not set(range(17)) & set(INDICES_49)
    assert 60 not in INDICES_49 and 64 not in INDICES_49
    assert INDICES_49[0] == 17 and INDICES_49[-1] == 67


def test_map_68_to_19_values():
    pts = np.arange(68 * 2, dtype=np.float64).reshape(68, 2)  # point i = (2i, 2i+1)
    out = map_68_to_19(pts)
    assert out.shape == (19, 2)
    singles = {0: 17, 1: 19, 2: 21, 3: 22, 4: 24, 5: 26, 6: 36, 8: 39, 9: 42, 11: 45,
               12: 31, 13: 30, 14: 35, 15: 48, 17: 54, 18: 8}
    for k, i in singles.items():
        assert tuple(out[k]) == (2 * i, 2 * i + 1)
    assert tuple(out[7]) == (2 * 38.5, 2 * 38.5 + 1)  # mean of 36..41
    assert tuple(out[10]) == (2 * 44.5, 2 * 44.5 + 1)  # mean of 42..47
    assert tuple(out[16]) == (2 * 64.0, 2 * 64.0 + 1)  # mean of 62 and 66
    batch = np.stack([pts, pts + 1])[None]  # (1, 2, 68, 2)
    outb = map_68_to_19(batch.astype(np.float32))
    assert outb.shape == (1, 2, 19, 2) and outb.dtype == np.float32
    assert np.allclose(outb[0, 1], out + 1)
    with pytest.raises(ValueError):
        map_68_to_19(np.zeros((19, 2)))


def test_get_scheme_and_user_schemes():
    assert get_scheme("300W-68") is SCHEMES["300w-68"]
    assert get_scheme(68) is SCHEMES["300w-68"]
    assert get_scheme("aflw").num_landmarks == 19
    assert get_scheme(19).eye_corner_indices is None
    assert get_scheme("300w-68").eye_corner_indices == (36, 45)
    mine = LandmarkScheme("three", 3, (2, 1, 0), description="left, nose, right")
    assert get_scheme(mine) is mine
    with pytest.raises(ValueError):
        get_scheme("nope")
    with pytest.raises(ValueError):
        get_scheme(7)
    with pytest.raises(ValueError, match="not a permutation"):
        LandmarkScheme("bad", 3, (0, 0, 1))
    with pytest.raises(ValueError, match="involution"):
        LandmarkScheme("cycle", 3, (1, 2, 0))
    with pytest.raises(ValueError, match="entries"):
        LandmarkScheme("short", 3, (0, 1))
    with pytest.raises(ValueError):
        LandmarkScheme("eyes", 3, (2, 1, 0), eye_corner_indices=(0, 5))
