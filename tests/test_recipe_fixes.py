"""Tests for the training-recipe fixes of issue 6: fp32 heads under autocast, one decoder and one
antialiased crop warp for training and inference, a data-keyed face cache, --init, the kept time
budget, small-data errors, and the in-the-wild augmentation."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from facelandmarks_smt import Detector
from facelandmarks_smt.config import get_config
from facelandmarks_smt.images import load_image
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.preprocess import crop_matrix, warp_crop
from facelandmarks_smt.training.augment import AugmentConfig, apply_photometric, augment_sample, sample_augmentation
from facelandmarks_smt.training.cache import FaceCache
from facelandmarks_smt.training.cli import _init_weights, cache_key
from facelandmarks_smt.training.config import TrainConfig
from facelandmarks_smt.training.datasets import load_datasets, load_image as dataset_load_image
from facelandmarks_smt.weights_io import save_weights
from test_trainer import _write_pts_folder as _pts_folder
from test_trainer import cli_config_json, micro_model, micro_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_heads_run_in_fp32_under_bf16_autocast():
    """bf16 logits move the argmax (ties to the lowest index): the heads must stay fp32."""
    torch.manual_seed(0)
    model = SMTNet(get_config("tiny", hourglass_depth=2, input_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        outs = model(x)
    for heatmaps, residuals in outs:
        assert heatmaps.dtype == torch.float32 and residuals.dtype == torch.float32


def test_one_image_decoder_for_training_and_inference(tmp_path):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (5, 5), 2)
    p = tmp_path / "f.jpg"
    cv2.imwrite(str(p), img)
    a, b = load_image(p), dataset_load_image(p)
    assert a.shape == (60, 80, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, cv2.imread(str(p))[:, :, ::-1])
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(tmp_path / "bad.jpg")


def test_large_face_inference_crop_matches_training_crop():
    """A face much larger than the crop: Detector's crop is antialiased like the training cache's,
    so the network sees the same pixels in both (a plain bilinear warp aliases)."""
    rng = np.random.default_rng(1)
    img = (rng.random((1400, 1400, 3)) < 0.5).astype(np.uint8) * 255  # worst case for aliasing
    pts = np.array([[300.0, 300.0], [1100.0, 1100.0], [700.0, 650.0]], np.float32)
    model = SMTNet(get_config("tiny", num_landmarks=3, scheme="none", crop_factor=1.3))
    det = Detector(model, device="cpu")
    box = [300.0, 300.0, 1100.0, 1100.0]
    crop_inf, _ = det.crop(img, [box])
    cache = FaceCache.build([(img, pts, {})], model.config, margin=1.0, progress=False, num_workers=0)
    c_img, c_pts, c_box = cache[0]
    crop_train, _, _ = augment_sample(c_img, c_pts, c_box, model.config, AugmentConfig.disabled(), None)
    plain = warp_crop(img, crop_matrix(box, 1.3, 256), 256, antialias=False)
    d_train = np.abs(crop_inf.astype(float)[0] - crop_train).mean()
    d_plain = np.abs(plain.astype(float) - crop_train).mean()
    assert d_train < 12 and d_plain > 3 * d_train, (d_train, d_plain)
    # mean brightness is kept (box filter), where the bilinear warp samples single pixels
    assert abs(crop_inf[0].mean() - 127.5) < 6


def test_cache_key_follows_the_data(tmp_path):
    _pts_folder(tmp_path / "a", synthetic_faces(4, seed=1))
    _pts_folder(tmp_path / "b", synthetic_faces(4, seed=2))
    cfg = micro_model()
    a, b = load_datasets([str(tmp_path / "a")]), load_datasets([str(tmp_path / "b")])
    ka = cache_key(a, cfg, 1.2)
    assert ka == cache_key(load_datasets([str(tmp_path / "a")]), cfg, 1.2)  # same data, same key
    assert ka != cache_key(b, cfg, 1.2)  # other files
    assert ka != cache_key(a, cfg.replace(crop_factor=1.6), 1.2)  # other crop
    assert ka != cache_key(a, cfg, 1.3)  # other margin
    assert ka != cache_key(a.subset([0, 1, 2]), cfg, 1.2)  # other split
    f = next((tmp_path / "a").glob("*.png"))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a file changed in place
    assert ka != cache_key(load_datasets([str(tmp_path / "a")]), cfg, 1.2)


def _cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "facelandmarks_smt.training"] + args, capture_output=True,
                          text=True, env=env, timeout=300, **kw)


def test_small_data_gives_clear_errors(tmp_path):
    _pts_folder(tmp_path / "d", synthetic_faces(3, seed=3))
    cfg_file = tmp_path / "micro.json"
    cfg_file.write_text(cli_config_json(micro_train_config(batch_size=8)))
    r = _cli(["train", "--data", str(tmp_path / "d"), "--config", str(cfg_file), "--out", str(tmp_path / "o"),
              "--device", "cpu", "--max-steps", "1", "--no-progress"])
    assert r.returncode == 2
    assert "fewer than one batch" in r.stderr and "Traceback" not in r.stderr
    assert "validation split has only" in r.stderr  # a 1-face validation split is warned about


def test_init_from_weights_and_mismatch(tmp_path):
    torch.manual_seed(3)
    cfg = micro_train_config()
    model = SMTNet(cfg.model)
    path = tmp_path / "w.safetensors"
    save_weights(model, cfg.model, path)
    state = _init_weights(str(path), cfg)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="width"):
        _init_weights(str(path), micro_train_config(model=micro_model(width=64)))
    _pts_folder(tmp_path / "d", synthetic_faces(10, seed=4))
    cfg_file = tmp_path / "micro.json"
    cfg_file.write_text(cli_config_json(cfg))
    r = _cli(["train", "--data", str(tmp_path / "d"), "--config", str(cfg_file), "--set", "val_fraction=0.2",
              "--out", str(tmp_path / "o"), "--device", "cpu", "--max-steps", "1", "--no-progress",
              "--init", str(path)])
    assert r.returncode == 0, r.stderr
    lists = json.loads((tmp_path / "o" / "data_lists.json").read_text())
    assert lists["init"] == str(path)


def test_time_fraction_lr_drops():
    from facelandmarks_smt.training.trainer import Trainer

    faces = synthetic_faces(8, seed=5)
    cfg = micro_train_config(lr=1e-3, lr_gamma=0.1, lr_milestone_fractions=(0.5, 0.75))
    tr = Trainer(cfg, faces, faces[:4], "/tmp/unused_lr_test", device="cpu", progress=False)
    tr._budget = 100.0
    assert tr.lr_at(0, 0, elapsed=10) == pytest.approx(1e-3)
    assert tr.lr_at(0, 0, elapsed=60) == pytest.approx(1e-4)
    assert tr.lr_at(0, 0, elapsed=80) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="lr_milestone_fractions"):
        TrainConfig(lr_milestone_fractions=(1.5,))


def test_in_the_wild_augmentation():
    rng = np.random.default_rng(0)
    crop = np.full((64, 64, 3), 100, np.uint8)
    crop[:, :, 0] = 200
    assert apply_photometric(crop, None) is crop
    grey = apply_photometric(crop, {"grey": True})
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    occ = apply_photometric(crop, {"occlusion": [(0.5, 0.5, 0.25, 0.25)], "occlusion_grey": 7})
    assert (occ[24:40, 24:40] == 7).all() and (occ[:20] == crop[:20]).all()
    # colour with unit parameters is the identity; gamma > 1 darkens
    np.testing.assert_array_equal(apply_photometric(crop, {"color": (1.0, 1.0, 1.0, 1.0)}), crop)
    assert apply_photometric(crop, {"color": (1.0, 1.0, 1.0, 2.0)}).mean() < crop.mean()
    jp = apply_photometric(crop, {"jpeg": 30})
    assert jp.shape == crop.shape and np.abs(jp.astype(int) - crop).mean() < 10
    cfg = AugmentConfig(occlusion_prob=0.5, motion_blur_prob=0.5, color_prob=0.5, grey_prob=0.5, jpeg_prob=0.5)
    draws = [sample_augmentation(rng, cfg)["photo"] for _ in range(400)]
    for key in ("occlusion", "motion_blur", "color", "grey", "jpeg"):
        frac = np.mean([d is not None and key in d for d in draws])
        assert 0.4 < frac < 0.6, (key, frac)
    # paper-only configs keep their random stream (no extra draws)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    sample_augmentation(r1, AugmentConfig())
    r2.random(6)
    assert r1.random() == r2.random()
    # landmarks follow only the geometry
    img = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    pts = rng.uniform(60, 140, (6, 2)).astype(np.float32)
    m_cfg = micro_model()
    p = sample_augmentation(np.random.default_rng(1), cfg)
    _, out_a, _ = augment_sample(img, pts, None, m_cfg, cfg, None, np.arange(6), params=p)
    _, out_b, _ = augment_sample(img, pts, None, m_cfg, cfg, None, np.arange(6), params={**p, "photo": None})
    np.testing.assert_array_equal(out_a, out_b)
    with pytest.raises(ValueError):
        AugmentConfig(occlusion_prob=1.5)


def test_cache_rebuild_never_touches_a_cache_that_is_in_use(tmp_path):
    """Two runs sharing --cache may build the same folder at once: a build goes to a private folder
    and is renamed into place, so files another run has memory-mapped are never truncated."""
    faces = synthetic_faces(3, num_landmarks=6, size=96)
    cfg = get_config("tiny", hourglass_depth=2, input_size=64)
    first = FaceCache.build(faces, cfg, margin=1.0, progress=False, num_workers=0, path=tmp_path / "c")
    before = np.array(first.images)  # a copy, to compare the mapped view against
    inode = os.stat(tmp_path / "c" / "images.npy").st_ino
    again = FaceCache.build(faces, cfg, margin=1.0, progress=False, num_workers=0, path=tmp_path / "c")
    np.testing.assert_array_equal(np.asarray(first.images), before)  # still readable, unchanged
    np.testing.assert_array_equal(np.asarray(again.images), before)
    assert os.stat(tmp_path / "c" / "images.npy").st_ino == inode  # the finished cache was kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no leftover build folders


def test_failed_cache_build_leaves_nothing(tmp_path):
    faces = synthetic_faces(2, num_landmarks=6, size=96) + [(np.zeros((96, 96, 3), np.uint8), np.zeros((5, 2)), {})]
    cfg = get_config("tiny", hourglass_depth=2, input_size=64)
    with pytest.raises(ValueError, match="landmarks"):
        FaceCache.build(faces, cfg, margin=1.0, progress=False, num_workers=0, path=tmp_path / "c")
    assert list(tmp_path.iterdir()) == []
