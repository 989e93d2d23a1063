"""Degradations (training/degrade.py) and their use as training augmentation."""

import json

import cv2
import numpy as np
import pytest

from facelandmarks_smt.config import get_config
from facelandmarks_smt.training.augment import AugmentConfig, augment_sample, sample_augmentation
from facelandmarks_smt.training.degrade import KINDS, degrade, degrade_folder


def _photo(size=200, seed=0):
    """A textured image with a bright 'face' square in the middle (box 50..150)."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (25, 25, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    img[50:150, 50:150] = np.clip(img[50:150, 50:150].astype(int) // 2 + 120, 0, 255)
    return img, (50.0, 50.0, 150.0, 150.0)


def _sharpness(img):
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_changes_the_image_deterministically(kind):
    img, box = _photo()
    a = degrade(img, box, kind, np.random.default_rng(3), 0.7)
    b = degrade(img, box, kind, np.random.default_rng(3), 0.7)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - img.astype(int)).mean() > 0.5


@pytest.mark.parametrize("kind", ["blur", "motion", "lowres"])
def test_blurs_get_stronger_with_severity(kind):
    img, box = _photo()
    s = [_sharpness(degrade(img, box, kind, np.random.default_rng(0), sev)) for sev in (0.0, 0.5, 1.0)]
    assert _sharpness(img) > s[0] > s[1] > s[2]


def test_strength_is_relative_to_the_face():
    """The same draw on a 2x larger photo of the same face gives the same picture at 2x scale."""
    img, box = _photo()
    big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    small_out = degrade(img, box, "blur", np.random.default_rng(0), 0.8)
    big_out = degrade(big, [2 * v for v in box], "blur", np.random.default_rng(0), 0.8)
    back = cv2.resize(big_out, (200, 200), interpolation=cv2.INTER_AREA)
    assert np.abs(back.astype(int) - small_out.astype(int)).mean() < 4.0


def test_dark_darkens_and_occlusion_stays_near_the_face():
    img, box = _photo()
    assert degrade(img, box, "dark", np.random.default_rng(0), 0.5).mean() < 0.7 * img.mean()
    for seed in range(6):
        out = degrade(img, box, "occlusion", np.random.default_rng(seed), 0.3)
        changed = np.abs(out.astype(int) - img.astype(int)).sum(-1) > 0
        ys, xs = np.nonzero(changed)
        assert changed.any()
        # centre drawn inside the box; a 0.3 x 100 px object (rotated, plus hair strands) stays within ~60 px
        assert xs.min() > 50 - 75 and xs.max() < 150 + 75 and ys.min() > 50 - 110 and ys.max() < 150 + 75


def test_unknown_kind_is_an_error(tmp_path):
    img, box = _photo()
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(img, box, "fog", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_folder([str(tmp_path)], tmp_path / "o", kinds=("fog",))


def test_degrade_folder_names_kinds_and_keeps_labels(tmp_path):
    from facelandmarks_smt.datasets import load_datasets, write_pts

    img, box = _photo()
    src = tmp_path / "src"
    src.mkdir()
    pts = np.array([[60, 60], [140, 60], [100, 100], [70, 140], [130, 140], [100, 145]], np.float32)
    for k in range(2):
        cv2.imwrite(str(src / f"f{k}.png"), img[:, :, ::-1])
        write_pts(src / f"f{k}.pts", pts)
    out = tmp_path / "out"
    c = degrade_folder([str(src)], out, ("blur", "dark"), progress=False)
    assert c == {"faces": 2, "written": 4}
    ds = load_datasets([str(out)])
    assert sorted(m["name"] for m in ds.metas) == ["f0_blur", "f0_dark", "f1_blur", "f1_dark"]
    assert all(np.allclose(lm, pts, atol=1e-3) for _, lm in ds.items)
    assert json.loads((out / "degraded.json").read_text())["kinds"] == ["blur", "dark"]
    assert degrade_folder([str(src)], out, ("blur", "dark"), progress=False)["written"] == 0  # resumable
    one = degrade_folder([str(src)], tmp_path / "one", ("blur", "dark", "noise"), per_face=1, progress=False)
    assert one["written"] == 2


def test_augmentation_draws_degradations_without_changing_older_streams():
    base = AugmentConfig()
    more = AugmentConfig(defocus_prob=1.0, dark_prob=1.0)
    p0 = sample_augmentation(np.random.default_rng(5), base)
    p1 = sample_augmentation(np.random.default_rng(5), more)
    assert "degrade" not in p0
    assert {k: p1[k] for k in p0} == p0  # geometry and older draws unchanged
    assert [k for k, _ in p1["degrade"]] == ["blur", "dark"]
    with pytest.raises(ValueError, match="dark_prob"):
        AugmentConfig(dark_prob=1.5)


def test_augment_sample_applies_the_drawn_degradation():
    img, box = _photo(256)
    pts = np.array([[80, 80], [170, 80], [125, 125], [90, 170], [160, 170], [125, 180]], np.float32)
    cfg = get_config("tiny")  # only input_size and crop_factor matter for the crop
    params = sample_augmentation(np.random.default_rng(0), AugmentConfig(flip_prob=0.0))
    clean, lm0, _ = augment_sample(img, pts, None, cfg, AugmentConfig(flip_prob=0.0), None, params=params)
    params = {**params, "degrade": [("dark", 0.8)], "degrade_seed": 1}
    dark, lm1, _ = augment_sample(img, pts, None, cfg, AugmentConfig(flip_prob=0.0), None, params=params)
    assert np.array_equal(lm0, lm1)  # labels never move
    assert dark.mean() < 0.6 * clean.mean()


@pytest.mark.parametrize("kind", ["blur", "motion", "lowres"])
def test_severities_past_one_continue_the_scale(kind):
    img, box = _photo()
    s = [_sharpness(degrade(img, box, kind, np.random.default_rng(0), sev)) for sev in (1.0, 1.5, 2.0)]
    assert s[0] > s[1] > s[2]


def test_heavy_severities_keep_their_floors_and_bad_ones_are_named():
    img, box = _photo()
    dark = degrade(img, box, "dark", np.random.default_rng(0), 2.0)  # brightness floor 0.1, not negative
    assert dark.dtype == np.uint8 and 0 < dark.mean() < 0.3 * img.mean()
    assert degrade(img, box, "jpeg", np.random.default_rng(0), 2.0).shape == img.shape  # quality floor 5
    with pytest.raises(ValueError, match="severity"):
        degrade(img, box, "blur", np.random.default_rng(0), 2.5)
    with pytest.raises(ValueError, match="severity"):
        degrade(img, box, "blur", np.random.default_rng(0), -0.1)
    with pytest.raises(ValueError, match="degrade_max_severity"):
        AugmentConfig(degrade_max_severity=3.0)


def test_degrade_folder_severity_range(tmp_path):
    img, box = _photo(120)
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.jpg"), img)
    pts = np.array([[50, 50], [150, 50], [100, 100], [60, 150], [140, 150]], np.float32) * 0.6
    (src / "a.pts").write_text("version: 1\nn_points: 5\n{\n" + "\n".join(f"{x} {y}" for x, y in pts) + "\n}\n")
    mild = degrade_folder([str(src)], tmp_path / "mild", ("blur",), severity=(0.0, 0.0), progress=False)
    heavy = degrade_folder([str(src)], tmp_path / "heavy", ("blur",), severity=(2.0, 2.0), progress=False)
    assert mild["written"] == heavy["written"] == 1
    a = cv2.imread(str(tmp_path / "mild" / "a_blur.jpg"))
    b = cv2.imread(str(tmp_path / "heavy" / "a_blur.jpg"))
    assert _sharpness(a) > 3 * _sharpness(b)
    assert json.loads((tmp_path / "heavy" / "degraded.json").read_text())["severity"] == [2.0, 2.0]
    with pytest.raises(ValueError, match="severity range"):
        degrade_folder([str(src)], tmp_path / "bad", ("blur",), severity=(1.5, 1.0), progress=False)


def test_augmentation_max_severity_scales_the_draws():
    p1 = sample_augmentation(np.random.default_rng(5), AugmentConfig(defocus_prob=1.0, dark_prob=1.0))
    p2 = sample_augmentation(np.random.default_rng(5), AugmentConfig(defocus_prob=1.0, dark_prob=1.0,
                                                                    degrade_max_severity=2.0))
    assert [k for k, _ in p2["degrade"]] == [k for k, _ in p1["degrade"]]
    assert [s for _, s in p2["degrade"]] == pytest.approx([2 * s for _, s in p1["degrade"]])
