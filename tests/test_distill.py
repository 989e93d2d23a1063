"""Distillation (``--teacher``): soft targets from a teacher's heatmaps, mixed into the heatmap
loss with ``distill_weight``; the teacher must describe the student's crops pixel for pixel."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.training.cache import FaceCache
from facelandmarks_smt.training.targets import gaussian_heatmaps, teacher_heatmaps
from facelandmarks_smt.training.trainer import Trainer, check_teacher
from facelandmarks_smt.weights_io import save_weights, sha256_file
from test_trainer import _write_pts_folder, micro_model, micro_train_config


def test_teacher_heatmaps_by_hand():
    logits = torch.tensor([[[[0.0, 1.0], [2.0, 0.0]]]])
    e = np.exp([0.0, 1.0, 2.0, 0.0])
    soft = teacher_heatmaps(logits, "bice_softmax")
    np.testing.assert_allclose(soft.flatten().numpy(), e / e.max(), rtol=1e-6)  # softmax / its peak
    np.testing.assert_allclose(teacher_heatmaps(logits, "uce").numpy(), soft.numpy())
    s = 1 / (1 + np.exp(-np.array([0.0, 1.0, 2.0, 0.0])))
    np.testing.assert_allclose(teacher_heatmaps(logits, "bice_sigmoid").flatten().numpy(), s / s.max(), rtol=1e-6)
    np.testing.assert_array_equal(teacher_heatmaps(logits, "mse").numpy(), logits.numpy())
    assert not teacher_heatmaps(logits.requires_grad_(), "bice_softmax").requires_grad
    with pytest.raises(ValueError, match="B, L, H, W"):
        teacher_heatmaps(torch.zeros(2, 3), "bice_softmax")
    with pytest.raises(ValueError, match="no teacher targets"):
        teacher_heatmaps(logits, "nope")


def test_gaussian_teacher_reproduces_the_ground_truth_loss():
    """A teacher whose softmax is the Gaussian target gives the plain loss back, whatever the weight;
    any other teacher changes it by exactly distill_weight times the difference."""
    torch.manual_seed(0)
    faces = synthetic_faces(8, seed=3)
    cfg = micro_train_config(distill_weight=0.3)
    caches = FaceCache.build(faces[:6], cfg.model), FaceCache.build(faces[6:], cfg.model)
    plain = Trainer(cfg, *caches, out_dir=os.path.join(os.environ.get("PYTEST_TMP", "/tmp"), f"d0_{os.getpid()}"),
                    device="cpu", progress=False)
    b, L, s = 2, cfg.model.num_landmarks, cfg.model.heatmap_size
    pts = torch.randint(4, s - 4, (b, L, 2)).float()  # whole pixels: the Gaussian peaks at exactly 1
    outputs = [(torch.randn(b, L, s, s), torch.randn(b, L, 2) * 0.3) for _ in range(cfg.model.num_stacks)]
    base, _ = plain.loss(outputs, pts)
    gauss = gaussian_heatmaps(pts, s, cfg.sigmas[0])
    same, parts = plain.loss(outputs, pts, teacher_logits=gauss.clamp_min(1e-30).log())
    torch.testing.assert_close(same, base, rtol=1e-5, atol=1e-4)
    assert "loss_t0" in parts
    other = torch.randn(b, L, s, s)
    mixed, _ = plain.loss(outputs, pts, teacher_logits=other)
    soft = teacher_heatmaps(other, cfg.heatmap_loss)
    want = base + sum(0.3 * (plain.heatmap_loss(h, soft) - plain.heatmap_loss(h, gaussian_heatmaps(pts, s, sig)))
                      for (h, _), sig in zip(outputs, [cfg.sigmas[0]] * cfg.model.num_stacks))
    torch.testing.assert_close(mixed, want, rtol=1e-5, atol=1e-4)


def test_teacher_must_fit_the_student():
    check_teacher(micro_model(), micro_model(width=16))  # widths may differ: that is the point
    with pytest.raises(ValueError, match="crop_factor 1.6 \\(teacher\\) vs 1.3"):
        check_teacher(micro_model(crop_factor=1.6), micro_model())
    with pytest.raises(ValueError, match="input_size"):
        check_teacher(micro_model(input_size=64, hourglass_depth=2), micro_model())
    faces = synthetic_faces(8, seed=3)
    cfg = micro_train_config()
    caches = FaceCache.build(faces[:6], cfg.model), FaceCache.build(faces[6:], cfg.model)
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(cfg, *caches, out_dir=os.path.join(os.environ.get("PYTEST_TMP", "/tmp"), f"d1_{os.getpid()}"),
                device="cpu", progress=False, teacher=SMTNet(micro_model(crop_factor=1.5)), teacher_id="x")


def test_cli_distils_from_a_teacher_and_records_it(tmp_path):
    data = tmp_path / "data"
    _write_pts_folder(data, synthetic_faces(10, seed=7))
    torch.manual_seed(1)
    teacher = tmp_path / "teacher.safetensors"
    # scheme "none": the test's synthetic-6 scheme is registered in this process only, not in the CLI's
    save_weights(SMTNet(micro_model(scheme="none")), micro_model(scheme="none"), teacher)
    cfg_file = tmp_path / "student.json"
    cfg_file.write_text(json.dumps(micro_train_config(model=micro_model(width=16, inner_width=16, scheme="none"),
                                                      epochs=1, stage_epochs=(1,)).to_dict()))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    train = [sys.executable, "-m", "facelandmarks_smt.training", "train", "--data", str(data), "--config",
             str(cfg_file), "--set", "val_fraction=0.2", "--device", "cpu", "--no-progress"]
    out = tmp_path / "run"
    r = subprocess.run(train + ["--out", str(out), "--teacher", str(teacher)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    from facelandmarks_smt.weights_io import load_weights

    config, _, meta = load_weights(out / "best.safetensors")
    assert config.width == 16
    assert meta["teacher"].endswith("sha256:" + sha256_file(teacher))  # strings as they are, the rest JSON
    assert json.loads(meta["data_lists"])["teacher"] == meta["teacher"]
    r = subprocess.run(train + ["--out", str(out), "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "same --teacher" in r.stderr  # resumed without its teacher
    r = subprocess.run(train + ["--out", str(tmp_path / "bad"), "--teacher", str(teacher),
                                "--set", "model.crop_factor=1.6"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "crop_factor" in r.stderr


def test_distilling_only_the_data_faces_mixes_per_sample():
    """With ``distill_sources="data"`` the teacher teaches only the --data faces: a batch's loss is the
    mean of the distilled samples' mixed loss and the others' plain loss, each sample weighing the same."""
    torch.manual_seed(0)
    faces = synthetic_faces(8, seed=3)
    cfg = micro_train_config(distill_weight=0.4, distill_sources="data")
    caches = FaceCache.build(faces[:6], cfg.model), FaceCache.build(faces[6:], cfg.model)
    out = os.path.join(os.environ.get("PYTEST_TMP", "/tmp"), f"d2_{os.getpid()}")
    with pytest.raises(ValueError, match="needs data_faces"):
        Trainer(cfg, *caches, out_dir=out, device="cpu", progress=False, teacher=SMTNet(cfg.model), teacher_id="x")
    with pytest.raises(ValueError, match="outside"):
        Trainer(cfg, *caches, out_dir=out, device="cpu", progress=False, teacher=SMTNet(cfg.model),
                teacher_id="x", data_faces=7)
    tr = Trainer(cfg, *caches, out_dir=out, device="cpu", progress=False, teacher=SMTNet(cfg.model),
                 teacher_id="x", data_faces=4)
    np.testing.assert_array_equal(tr.distilled_mask(np.array([5, 0, 3, 4])).numpy(), [False, True, True, False])
    b, L, s = 4, cfg.model.num_landmarks, cfg.model.heatmap_size
    pts = torch.randint(4, s - 4, (b, L, 2)).float()
    outputs = [(torch.randn(b, L, s, s), torch.randn(b, L, 2) * 0.3) for _ in range(cfg.model.num_stacks)]
    teacher = torch.randn(b, L, s, s)
    mask = torch.tensor([True, False, True, False])
    mixed, parts = tr.loss(outputs, pts, teacher_logits=teacher[mask], distilled=mask)
    assert "loss_t0" in parts
    # by hand: each sample's own loss (distilled: 0.6 gt + 0.4 teacher), then the batch mean
    want = 0.0
    for i in range(b):
        one = [(h[i:i + 1], r[i:i + 1]) for h, r in outputs]
        if mask[i]:
            li, _ = tr.loss(one, pts[i:i + 1], teacher_logits=teacher[i:i + 1])
        else:
            li, _ = tr.loss(one, pts[i:i + 1])
        want = want + li / b
    torch.testing.assert_close(mixed, want, rtol=1e-5, atol=1e-5)
    # all distilled: the same as the plain mix; none: the plain loss
    full, _ = tr.loss(outputs, pts, teacher_logits=teacher, distilled=torch.ones(b, dtype=torch.bool))
    torch.testing.assert_close(full, tr.loss(outputs, pts, teacher_logits=teacher)[0])
    none, _ = tr.loss(outputs, pts, teacher_logits=teacher[:0], distilled=torch.zeros(b, dtype=torch.bool))
    torch.testing.assert_close(none, tr.loss(outputs, pts)[0])
    with pytest.raises(ValueError, match="distilled samples"):
        tr.loss(outputs, pts, teacher_logits=teacher, distilled=mask)
    with pytest.raises(ValueError, match="distill_sources"):
        micro_train_config(distill_sources="extra")
    # a training step runs with the mask (teacher on the distilled samples only)
    loss, _ = tr.train_step(tr.batches.make_batch(0, np.array([0, 5, 1, 4])))
    assert np.isfinite(loss)


def test_clean_teacher_input_sees_the_undegraded_crop():
    """With ``distill_input="clean"`` the batches carry the same crops (same warp, flip and points)
    without the photometric draws, and the teacher runs on those, not on the degraded crops."""
    from facelandmarks_smt.training.augment import AugmentConfig, augment_sample, sample_augmentation

    torch.manual_seed(0)
    faces = synthetic_faces(8, seed=3)
    aug = AugmentConfig(rotation=20, scale=0.1, translation=0.05, flip_prob=0.0, blur_prob=1.0, blur_sigma=1.5,
                        color_prob=1.0, noise_prob=1.0, occlusion_prob=1.0)
    cfg = micro_train_config(distill_input="clean", augment=aug)
    with pytest.raises(ValueError, match="distill_input"):
        micro_train_config(distill_input="teacher")
    caches = FaceCache.build(faces[:6], cfg.model, margin=2.0), FaceCache.build(faces[6:], cfg.model)
    out = os.path.join(os.environ.get("PYTEST_TMP", "/tmp"), f"d3_{os.getpid()}")
    seen = []

    class Recorder(SMTNet):
        def forward(self, x):
            seen.append(x.detach().clone())
            return super().forward(x)

    tr = Trainer(cfg, *caches, out_dir=out, device="cpu", progress=False, teacher=Recorder(cfg.model),
                 teacher_id="x")
    idx = np.array([0, 3, 1, 5])
    batch = tr.batches.make_batch(0, idx)
    assert batch["clean_crops"].shape == batch["crops"].shape
    for j, i in enumerate(idx):  # the clean crop is augment_sample with the geometric draws only
        params = sample_augmentation(np.random.default_rng([cfg.seed, 0, int(i)]), aug)
        image, lm, box = tr.batches.cache[int(i)]
        crop, pts, _ = augment_sample(image, lm, box, cfg.model, aug, None,
                                      params={**params, "blur": 0.0, "photo": None, "degrade": None})
        np.testing.assert_array_equal(batch["clean_crops"][j], crop)
        np.testing.assert_allclose(batch["landmarks"][j], pts)
        assert np.abs(batch["crops"][j].astype(int) - crop).mean() > 1  # the student's crop is degraded
    tr.train_step(batch)
    torch.testing.assert_close(seen[-1], tr._inputs({**batch, "crops": batch["clean_crops"]})[0])
    # the default ("augmented"): no clean crops are made and the teacher sees the student's input
    plain = Trainer(micro_train_config(augment=aug), *caches, out_dir=out + "p", device="cpu", progress=False,
                    teacher=Recorder(cfg.model), teacher_id="x")
    b2 = plain.batches.make_batch(0, idx)
    assert "clean_crops" not in b2
    plain.train_step(b2)
    torch.testing.assert_close(seen[-1], plain._inputs(b2)[0])


def test_flip_teacher_averages_the_mirrored_view_and_is_flip_equivariant():
    """``distill_flip``: the teacher's logits are the mean of its crop's and its mirrored crop's
    (mirrored back, landmarks reordered by the scheme's flip permutation), so mirroring the input
    mirrors the targets exactly; a scheme without a permutation for the model is refused."""
    from facelandmarks_smt.schemes import get_scheme

    torch.manual_seed(0)
    faces = synthetic_faces(8, seed=3)
    cfg = micro_train_config(distill_flip=True)
    caches = FaceCache.build(faces[:6], cfg.model, margin=2.0), FaceCache.build(faces[6:], cfg.model)
    out = os.path.join(os.environ.get("PYTEST_TMP", "/tmp"), f"d4_{os.getpid()}")
    teacher = SMTNet(cfg.model).eval()
    tr = Trainer(cfg, *caches, out_dir=out, device="cpu", progress=False, teacher=teacher, teacher_id="x")
    perm = list(get_scheme(cfg.model.scheme).flip_permutation)
    x = torch.randn(2, 3, cfg.model.input_size, cfg.model.input_size)
    with torch.no_grad():
        got = tr.teacher_logits(x)
        a, b = teacher(x)[-1][0], teacher(x.flip(-1))[-1][0]
        mirrored = tr.teacher_logits(x.flip(-1))
    torch.testing.assert_close(got, 0.5 * (a + b.flip(-1)[:, perm]))
    torch.testing.assert_close(mirrored, got.flip(-1)[:, perm], atol=1e-5, rtol=1e-5)
    assert np.isfinite(tr.train_step(tr.batches.make_batch(0, np.array([0, 5, 1, 4])))[0])
    plain = Trainer(micro_train_config(), *caches, out_dir=out + "p", device="cpu", progress=False, teacher=teacher,
                    teacher_id="x")
    with torch.no_grad():
        torch.testing.assert_close(plain.teacher_logits(x), a)  # default: the teacher alone
    with pytest.raises(ValueError, match="distill_flip"):
        micro_train_config(distill_flip="yes")
    bad = micro_train_config(distill_flip=True, model=micro_model(scheme="none"))
    with pytest.raises((ValueError, KeyError)):
        Trainer(bad, *(FaceCache.build(faces[:6], bad.model), FaceCache.build(faces[6:], bad.model)), out_dir=out + "b",
                device="cpu", progress=False, teacher=SMTNet(bad.model), teacher_id="x")
