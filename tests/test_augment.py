"""Augmentation and face cache: pixels and points move together, flips permute, streams replay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelandmarks_smt.config import ModelConfig
from facelandmarks_smt.preprocess import crop_matrix, transform_points, warp_crop
from facelandmarks_smt.schemes import FLIP_PERMUTATION_68, get_scheme
from facelandmarks_smt.training.augment import (
    AugmentConfig,
    augment_sample,
    sample_augmentation,
)
from facelandmarks_smt.training.cache import AugmentedBatches, FaceCache

CFG = ModelConfig()  # input 256, crop_factor 1.6
SMALL = ModelConfig(input_size=128)


def dot_image(rng, n=10, size=300, lo=90, hi=210, min_dist=25):
    """Black image with 3x3 white dots centred on integer pixel centres (the landmarks)."""
    pts = []
    while len(pts) < n:
        p = rng.integers(lo, hi, size=2)
        if all(np.hypot(*(p - q)) >= min_dist for q in pts):
            pts.append(p)
    pts = np.array(pts, dtype=np.float32)
    img = np.zeros((size, size, 3), np.uint8)
    for x, y in pts.astype(int):
        img[y - 1:y + 2, x - 1:x + 2] = 255
    return img, pts


def dot_centroid(crop, p, r=6):
    """Intensity centroid in a (2r+1)^2 window around ``p`` (background is black)."""
    x0, y0 = int(round(p[0])), int(round(p[1]))
    win = crop[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1].astype(np.float64).sum(axis=2)
    assert win.shape == (2 * r + 1, 2 * r + 1) and win.sum() > 0, "dot left the crop"
    ys, xs = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    return np.array([(win * xs).sum(), (win * ys).sum()]) / win.sum()


def smooth_image(rng, h, w, cell=24):
    """Low-frequency colour texture (features ~``cell`` px): resampling it twice changes it little."""
    small = rng.integers(0, 256, size=(max(2, h // cell), max(2, w // cell), 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def symmetric_face68(rng, cx=150.0):
    """68 points symmetric about x = cx under the 68-point mirror permutation."""
    perm = np.array(FLIP_PERMUTATION_68)
    pts = np.zeros((68, 2), np.float32)
    for i in range(68):
        j = perm[i]
        if j == i:
            pts[i] = (cx, rng.uniform(80, 220))
        elif i < j:
            pts[i] = (rng.uniform(70, cx - 5), rng.uniform(80, 220))
            pts[j] = (2 * cx - pts[i, 0], pts[i, 1])
    return pts


def fake_dataset(rng, n=10, L=68):
    out = []
    for k in range(n):
        h, w = int(rng.integers(180, 260)), int(rng.integers(180, 260))
        img = smooth_image(rng, h, w)
        c = np.array([w / 2, h / 2]) + rng.uniform(-20, 20, 2)
        pts = (c + rng.uniform(-50, 50, size=(L, 2))).astype(np.float32)
        out.append((img, pts, {"path": f"face{k}.jpg", "id": k}))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_dots_stay_on_their_pixels(seed):
    rng = np.random.default_rng(seed)
    img, pts = dot_image(rng)
    aug = AugmentConfig(flip_prob=0.5, blur_prob=0.5)
    ident = np.arange(len(pts))
    for trial in range(4):
        params = sample_augmentation(rng, aug)
        params["flip"] = bool(trial % 2)  # both mirror states for every seed
        crop, out, m = augment_sample(img, pts, None, CFG, aug, None, ident, params=params)
        assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
        assert out.shape == (10, 2) and out.dtype == np.float32
        np.testing.assert_allclose(out, transform_points(pts, m), atol=1e-4)
        for p in out:
            assert np.hypot(*(dot_centroid(crop, p) - p)) < 1.0


def test_dots_through_cache_and_batches():
    rng = np.random.default_rng(7)
    data = [dot_image(rng) + ({},) for _ in range(4)]
    cache = FaceCache.build(data, CFG, progress=False, num_workers=0)
    batches = AugmentedBatches(cache, CFG, AugmentConfig(), 2, seed=1,
                               flip_permutation=np.arange(10), num_workers=0)
    for batch in batches.epoch_batches(0):
        for crop, out, idx, m in zip(batch["crops"], batch["landmarks"], batch["indices"], batch["matrices"]):
            # matrices map the original image's points onto the crop
            np.testing.assert_allclose(transform_points(data[idx][1], m), out, atol=1e-3)
            for p in out:
                assert np.hypot(*(dot_centroid(crop, p) - p)) < 1.0


def test_flip_of_symmetric_face_gives_same_points():
    rng = np.random.default_rng(0)
    pts = symmetric_face68(rng)
    img = np.zeros((300, 300, 3), np.uint8)
    aug = AugmentConfig()
    base = {"angle": 0.0, "scale": 1.0, "shift": (0.0, 0.0), "blur": 0.0}
    scheme = get_scheme("300w-68")
    _, plain, _ = augment_sample(img, pts, None, CFG, aug, None, scheme, params={**base, "flip": False})
    _, flipped, _ = augment_sample(img, pts, None, CFG, aug, None, scheme, params={**base, "flip": True})
    np.testing.assert_allclose(flipped, plain, atol=1e-3)


def test_flip_mirrors_pixels_and_permutes_points():
    rng = np.random.default_rng(1)
    img = smooth_image(rng, 300, 300)
    pts = rng.uniform(80, 220, size=(68, 2)).astype(np.float32)
    perm = np.array(FLIP_PERMUTATION_68)
    params = {"angle": 17.0, "scale": 1.05, "shift": (0.03, -0.02), "blur": 0.0}
    aug = AugmentConfig()
    c0, p0, _ = augment_sample(img, pts, None, CFG, aug, None, perm, params={**params, "flip": False})
    c1, p1, _ = augment_sample(img, pts, None, CFG, aug, None, perm, params={**params, "flip": True})
    mirrored = p0[perm].copy()
    mirrored[:, 0] = 255 - mirrored[:, 0]
    np.testing.assert_allclose(p1, mirrored, atol=1e-3)
    assert np.abs(c1.astype(int) - c0[:, ::-1].astype(int)).mean() < 1.0


def test_disabled_is_the_inference_crop():
    rng = np.random.default_rng(2)
    img = smooth_image(rng, 240, 320)
    pts = rng.uniform(60, 180, size=(68, 2)).astype(np.float32)
    box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    crop, out, m = augment_sample(img, pts, box, CFG, AugmentConfig.disabled(), None)
    m_ref = crop_matrix(box, CFG.crop_factor, CFG.input_size)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(crop, warp_crop(img, m_ref, CFG.input_size))
    np.testing.assert_allclose(out, transform_points(pts, m_ref), atol=1e-5)


def test_sample_augmentation_ranges():
    rng = np.random.default_rng(3)
    cfg = AugmentConfig()
    ps = [sample_augmentation(rng, cfg) for _ in range(2000)]
    angles = np.array([p["angle"] for p in ps])
    scales = np.array([p["scale"] for p in ps])
    shifts = np.array([p["shift"] for p in ps])
    assert angles.min() >= -30 and angles.max() <= 30 and angles.min() < -28 and angles.max() > 28
    assert scales.min() >= 0.93 and scales.max() <= 1.07
    assert np.abs(shifts).max() <= 0.05 and np.abs(shifts).max() > 0.048
    assert 0.45 < np.mean([p["flip"] for p in ps]) < 0.55
    assert 0.45 < np.mean([p["blur"] > 0 for p in ps]) < 0.55
    assert {p["blur"] for p in ps} == {0.0, 1.0}


def test_batches_are_deterministic(tmp_path):
    rng = np.random.default_rng(4)
    cache = FaceCache.build(fake_dataset(rng), SMALL, progress=False, num_workers=2)

    def stream(seed=5, epoch=1, workers=0, start=0):
        b = AugmentedBatches(cache, SMALL, AugmentConfig(), 3, seed, FLIP_PERMUTATION_68, num_workers=workers)
        return list(b.epoch_batches(epoch, start))

    a, b = stream(), stream(workers=2)
    assert len(a) == 3  # 10 faces, batch 3, drop_last
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    for x, y in zip(a[1:], stream(start=1)):
        np.testing.assert_array_equal(x["crops"], y["crops"])
    assert not np.array_equal(a[0]["indices"], stream(epoch=2)[0]["indices"]) or \
        not np.array_equal(a[0]["crops"], stream(epoch=2)[0]["crops"])
    assert not np.array_equal(a[0]["crops"], stream(seed=6)[0]["crops"])
    it = AugmentedBatches(cache, SMALL, AugmentConfig(), 3, 5, FLIP_PERMUTATION_68, num_workers=0)
    it.set_epoch(1)
    first = list(it)
    assert it.epoch == 2
    np.testing.assert_array_equal(first[2]["crops"], a[2]["crops"])
    val = AugmentedBatches(cache, SMALL, AugmentConfig.disabled(), 4, 0, shuffle=False, drop_last=False)
    vb = list(val.epoch_batches(0))
    assert [len(v["indices"]) for v in vb] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([v["indices"] for v in vb]), np.arange(10))


def test_cache_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    data = fake_dataset(rng, n=5)
    cache = FaceCache.build(data, SMALL, progress=False, num_workers=0)
    assert len(cache) == 5 and cache.images.shape == (5, 208, 208, 3)
    assert cache.info["metas"][3]["path"] == "face3.jpg"
    cache.save(tmp_path / "c")
    for mmap in (True, False):
        back = FaceCache.load(tmp_path / "c", mmap=mmap)
        for name in ("images", "landmarks", "boxes", "to_cache"):
            np.testing.assert_array_equal(getattr(back, name), getattr(cache, name))
        assert back.info == cache.info
    on_disk = FaceCache.build(data, SMALL, progress=False, num_workers=2, path=tmp_path / "d")
    assert isinstance(on_disk.images, np.memmap)
    for name in ("images", "landmarks", "boxes", "to_cache"):
        np.testing.assert_array_equal(getattr(on_disk, name), getattr(cache, name))
    with pytest.raises(FileNotFoundError):
        FaceCache.load(tmp_path / "missing")


@pytest.mark.parametrize("big", [False, True])
def test_cache_crop_matches_direct_crop(big):
    rng = np.random.default_rng(6 + big)
    if big:  # a face much larger than the cache: exercises the antialiasing path
        img = smooth_image(rng, 1400, 1300, cell=120)  # smooth at crop scale, so no aliasing
        pts = rng.uniform(300, 1100, size=(68, 2)).astype(np.float32)
    else:  # a face near the image border: both crops see the same black padding
        img = smooth_image(rng, 260, 300)
        pts = rng.uniform(20, 200, size=(68, 2)).astype(np.float32)
    cache = FaceCache.build([(img, pts, {})], CFG, progress=False, num_workers=0)
    assert np.allclose(cache.to_cache[0, 0, 1], 0) and np.allclose(cache.to_cache[0, 1, 0], 0)
    aug = AugmentConfig(blur_prob=0.0)
    perm = np.array(FLIP_PERMUTATION_68)
    for trial in range(5):
        params = sample_augmentation(rng, aug) if trial else sample_augmentation(None, AugmentConfig.disabled())
        c_img, c_pts, c_box = cache[0]
        crop_c, pts_c, _ = augment_sample(c_img, c_pts, c_box, CFG, aug, None, perm, params=params)
        crop_d, pts_d, _ = augment_sample(img, pts, None, CFG, aug, None, perm, params=params)
        assert np.abs(pts_c - pts_d).max() < 0.5
        diff = np.abs(crop_c.astype(float) - crop_d.astype(float))
        assert diff.mean() < 1.0, diff.mean()


def test_warp_crop_antialias_keeps_geometry():
    img = np.zeros((2000, 2000, 3), np.uint8)
    img[995:1006, 1195:1206] = 255  # an 11x11 square centred on (1200, 1000)
    m = crop_matrix((800, 600, 1600, 1400), 1.0, 100)  # scale 1/8
    out = warp_crop(img, m, 100, antialias=True)
    p = transform_points(np.array([[1200.0, 1000.0]]), m)[0]
    assert np.hypot(*(dot_centroid(out, p, r=4) - p)) < 0.2


def test_bad_values_raise():
    for kw in ({"rotation": -1}, {"rotation": float("nan")}, {"flip_prob": 1.5}, {"translation": -0.1},
               {"scale": 1.0}, {"blur_sigma": -1}, {"blur_prob": 2}, {"enabled": "yes"}):
        with pytest.raises(ValueError):
            AugmentConfig(**kw)
    rng = np.random.default_rng(8)
    data = fake_dataset(rng, n=4)
    with pytest.raises(ValueError):
        FaceCache.build(data, SMALL, margin=0.5, progress=False)
    with pytest.raises(ValueError):
        FaceCache.build(data, SMALL, cache_size=8, progress=False)
    with pytest.raises(ValueError):
        FaceCache.build([], SMALL, progress=False)
    with pytest.raises(ValueError):
        FaceCache.build([(data[0][0][..., 0], data[0][1], {})], SMALL, progress=False)
    cache = FaceCache.build(data, SMALL, progress=False, num_workers=0)
    for kw in ({"batch_size": 0}, {"seed": -1}, {"flip_permutation": None},
               {"flip_permutation": list(range(67))}, {"flip_permutation": [0] * 68}, {"batch_size": 5}):
        args = {"batch_size": 2, "seed": 0, "flip_permutation": FLIP_PERMUTATION_68, **kw}
        with pytest.raises(ValueError):
            AugmentedBatches(cache, SMALL, AugmentConfig(), **args)
    img, pts, _ = data[0]
    params = {"angle": 0.0, "scale": 1.0, "shift": (0.0, 0.0), "flip": True, "blur": 0.0}
    with pytest.raises(ValueError):
        augment_sample(img, pts, None, SMALL, AugmentConfig(), None, None, params=params)
    with pytest.raises(ValueError):
        augment_sample(img, pts, None, SMALL, AugmentConfig(), None, FLIP_PERMUTATION_68)  # no rng
