import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from facelandmarks_smt import Detector
from facelandmarks_smt.config import ModelConfig
from facelandmarks_smt.schemes import LandmarkScheme, register_scheme
from facelandmarks_smt.training.augment import AugmentConfig
from facelandmarks_smt.training.config import TrainConfig, load_train_config
from facelandmarks_smt.training.datasets import write_pts
from facelandmarks_smt.training.schedule import stack_sigmas
from facelandmarks_smt.training.trainer import Trainer

# A 6-point "scheme" for the synthetic faces: points 2<->3 and 4<->5 mirror, 0 and 1 map to themselves
# only in name (the synthetic faces are not symmetric, so flips stay off in these tests).
register_scheme(LandmarkScheme("synthetic-6", 6, (0, 1, 3, 2, 5, 4)), overwrite=True)


def micro_model(**kw) -> ModelConfig:
    base = dict(num_landmarks=6, width=32, inner_width=32, num_stacks=2, hourglass_depth=3, coord_hidden=32,
                input_size=128, crop_factor=1.3, scheme="synthetic-6", name="micro")
    base.update(kw)
    return ModelConfig(**base)


def cli_config_json(cfg: TrainConfig) -> str:
    """``cfg`` as a config file for a training *subprocess*: scheme "none", because the test's
    synthetic-6 scheme is registered in this process only (an unknown scheme is an error)."""
    d = cfg.to_dict()
    d["model"]["scheme"] = "none"
    return json.dumps(d)


def micro_train_config(**kw) -> TrainConfig:
    base = dict(model=micro_model(), augment=AugmentConfig.disabled(), lr=2e-3, batch_size=4, epochs=2,
                sigmas=(2.0,), stage_epochs=(2,), lr_milestones=(), precision="fp32", num_workers=0,
                val_batch_size=8, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_overfit_eight_faces_learns():
    """Model + targets + losses + decoder agree: 8 faces are learnt to a low error."""
    torch.manual_seed(0)
    faces = synthetic_faces(8, seed=1)
    cfg = micro_train_config(epochs=15, batch_size=4, lr=3e-3, val_batch_size=8, sigmas=(1.5,),
                             stage_epochs=(15,), heatmap_loss="bice_softmax")
    out = os.path.join(os.environ.get("PYTEST_TMP", "/tmp"), f"overfit_{os.getpid()}")
    shutil.rmtree(out, ignore_errors=True)
    tr = Trainer(cfg, faces, faces, out, device="cpu", progress=False)
    first = tr.validate()["val_nme"]
    summary = tr.run()
    # box-normalised NME (no eye corners in this scheme): starts around 30-50 %, must drop below 4 %
    assert first > 15
    assert summary["best_val_nme"] < 4.0, summary
    det = Detector(os.path.join(out, "best.safetensors"), device="cpu")
    img, pts, _ = faces[0]
    box = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
    pred = det.detect(img, boxes=[box])[0].landmarks
    assert np.abs(pred - pts).max() < 6.0  # pixels, on a ~90 px face
    shutil.rmtree(out, ignore_errors=True)


def test_resume_reproduces_straight_run(tmp_path):
    faces = synthetic_faces(12, seed=2)
    val = synthetic_faces(4, seed=3)
    cfg = micro_train_config(epochs=3, sigmas=(3.0, 2.0), stage_epochs=(1, 2), lr_milestones=(2,),
                             augment=AugmentConfig(flip_prob=0.0), ema_decay=0.9, grad_clip=1.0)
    a = Trainer(cfg, faces, val, tmp_path / "a", device="cpu", progress=False)
    a.run()
    b = Trainer(cfg, faces, val, tmp_path / "b", device="cpu", progress=False)
    s1 = b.run(max_steps=4)  # stops mid-epoch 1 (3 steps per epoch), after the stage switch
    assert s1["stop_reason"] == "max_steps" and s1["step"] == 4 and s1["stage"] == 1
    c = Trainer(cfg, faces, val, tmp_path / "b", device="cpu", progress=False)
    s2 = c.run(resume=True)
    assert s2["step"] == a.state["step"] == 9
    sa, sc = a.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)
    ea, ec = a.ema.state_dict(), c.ema.state_dict()
    assert all(torch.equal(ea[k], ec[k]) for k in ea)
    log = [json.loads(line) for line in open(tmp_path / "b" / "log.jsonl")]
    assert [r["stage"] for r in log] == [0, 1, 1]
    assert [r["sigmas"][0] for r in log] == [3.0, 2.0, 2.0]


def test_outputs_and_metadata(tmp_path):
    faces = synthetic_faces(8, seed=4)
    cfg = micro_train_config(epochs=1)
    tr = Trainer(cfg, faces, faces[:4], tmp_path, device="cpu", progress=False,
                 data_lists={"train": [m["name"] for *_, m in faces]})
    tr.run()
    for name in ("best.safetensors", "last.pt", "log.jsonl", "config.json", "data_lists.json", "curve.png",
                 "summary.json"):
        assert (tmp_path / name).is_file(), name
    det = Detector(tmp_path / "best.safetensors", device="cpu")
    meta = det.metadata
    assert json.loads(meta["train_config"])["lr"] == cfg.lr
    assert "val_nme" in json.loads(meta["metrics"])
    assert json.loads(meta["data_lists"])["train"][0] == "synthetic_0"
    assert meta["git_commit"]


def test_time_budget_stops_cleanly(tmp_path):
    faces = synthetic_faces(8, seed=5)
    cfg = micro_train_config(epochs=1000)
    tr = Trainer(cfg, faces, faces[:4], tmp_path, device="cpu", progress=False)
    s = tr.run(max_minutes=0.05)
    assert s["stop_reason"] == "time budget"
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "last.pt").is_file()
    assert s["elapsed_min"] < 1.0


def test_resume_rejects_other_config(tmp_path):
    faces = synthetic_faces(8, seed=6)
    Trainer(micro_train_config(epochs=1), faces, faces[:4], tmp_path, device="cpu", progress=False).run()
    other = Trainer(micro_train_config(epochs=1, lr=0.5), faces, faces[:4], tmp_path, device="cpu", progress=False)
    with pytest.raises(ValueError, match="different training config"):
        other.run(resume=True)


def test_sigma_schedules():
    cfg = TrainConfig(sigma_mode="temporal")
    assert [stack_sigmas(cfg, s) for s in range(3)] == [[4.0, 4.0], [3.0, 3.0], [2.0, 2.0]]
    assert stack_sigmas(TrainConfig(sigma_mode="spatial"), 0) == [4.0, 3.0]
    assert stack_sigmas(TrainConfig(sigma_mode="fixed", sigmas=(2.5,)), 1) == [2.5, 2.5]
    with pytest.raises(ValueError):
        TrainConfig(sigma_mode="sideways")


def test_config_files(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("base: small\nlr: 0.0005\nmodel:\n  num_landmarks: 19\n  scheme: aflw-19\naugment:\n  rotation: 10\n")
    cfg = load_train_config(str(y))
    assert cfg.lr == 0.0005 and cfg.model.width == 128 and cfg.model.num_landmarks == 19
    assert cfg.augment.rotation == 10 and cfg.augment.flip_prob == 0.5
    t = tmp_path / "c.toml"
    t.write_text('base = "tiny"\nheatmap_loss = "uce"\n[model]\nwidth = 32\n')
    cfg = load_train_config(str(t))
    assert cfg.heatmap_loss == "uce" and cfg.model.width == 32 and cfg.model.inner_width == 128
    assert load_train_config("paper").lr == 1e-2
    cfg = load_train_config("tiny", {"lr": 0.1, "model.width": 16})
    assert cfg.lr == 0.1 and cfg.model.width == 16
    with pytest.raises(ValueError, match="unknown training config keys"):
        load_train_config("tiny", {"lrr": 1})
    with pytest.raises(FileNotFoundError):
        load_train_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError):
        load_train_config("tiny", {"heatmap_loss": "l7"})


def _write_pts_folder(root, faces):
    import cv2

    root.mkdir(parents=True)
    for img, pts, meta in faces:
        cv2.imwrite(str(root / f"{meta['name']}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        write_pts(root / f"{meta['name']}.pts", pts)


def test_cli_train_resume_and_evaluate(tmp_path):
    data = tmp_path / "data"
    _write_pts_folder(data, synthetic_faces(10, seed=7))
    cfg_file = tmp_path / "micro.json"
    cfg_file.write_text(cli_config_json(micro_train_config(epochs=2)))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    base = [sys.executable, "-m", "facelandmarks_smt.training"]
    out = tmp_path / "run"
    r = subprocess.run(base + ["train", "--data", str(data), "--config", str(cfg_file), "--set", "val_fraction=0.2",
                               "--out", str(out), "--device", "cpu", "--max-steps", "1", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == 1
    r = subprocess.run(base + ["train", "--data", str(data), "--config", str(cfg_file), "--set", "val_fraction=0.2",
                               "--out", str(out), "--device", "cpu", "--resume", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == 4  # 8 training faces / batch 4 = 2 steps x 2 epochs
    r = subprocess.run(base + ["evaluate", "--weights", str(out / "best.safetensors"), "--data", str(data),
                               "--out", str(tmp_path / "eval"), "--norm", "box", "--device", "cpu", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["faces"] == 10 and report["metrics"]["nme"] > 0
    assert (tmp_path / "eval" / "ced.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    half = tmp_path / "release.safetensors"
    r = subprocess.run(base + ["export", "--weights", str(out / "best.safetensors"), "--out", str(half), "--half",
                               "--name", "micro-release", "--licence", "test-only"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    from facelandmarks_smt.weights_io import sha256_file

    assert json.loads(r.stdout)["sha256"] == sha256_file(half)
    d32, d16 = Detector(out / "best.safetensors", device="cpu"), Detector(half, device="cpu", sha256=sha256_file(half))
    assert d16.config.name == "micro-release" and d16.config.training_data_licence == "test-only"
    assert d16.metadata["stored_dtype"] == "float16" and "metrics" in d16.metadata
    img, pts, _ = synthetic_faces(1, seed=7)[0]
    box = [[pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]]
    a, b = d32.detect(img, boxes=box)[0].landmarks, d16.detect(img, boxes=box)[0].landmarks
    assert np.abs(a - b).mean() < 0.5  # fp16 rounding moves predictions a little, not a lot
    r = subprocess.run(base + ["train", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert "--max-minutes" in r.stdout and "--resume" in r.stdout


def test_ddp_two_processes_gloo(tmp_path):
    """torchrun with 2 CPU processes (gloo) trains and writes one loadable weights file."""
    data = tmp_path / "data"
    _write_pts_folder(data, synthetic_faces(12, seed=8))
    cfg_file = tmp_path / "micro.json"
    cfg_file.write_text(cli_config_json(micro_train_config(epochs=1, batch_size=2)))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "facelandmarks_smt.training", "train", "--data", str(data), "--config", str(cfg_file),
                        "--set", "val_fraction=0.25", "--out", str(out), "--device", "cpu", "--threads", "1",
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 2  # 9 training faces // (2 per rank x 2 ranks) = 2 steps
    det = Detector(out / "best.safetensors", device="cpu")
    assert json.loads(det.metadata["world_size"]) == 2


def test_ema_warmup_follows_the_model_early_and_caps_at_the_decay():
    """After the first copy, update n uses decay min(d, (1+n)/(10+n)): hand-computed values."""
    from torch.optim.swa_utils import AveragedModel

    from facelandmarks_smt.training.trainer import ema_warmup_avg_fn

    net = torch.nn.Linear(1, 1, bias=False)
    ema = AveragedModel(net, multi_avg_fn=ema_warmup_avg_fn(0.5), use_buffers=True)
    values = [1.0, 2.0, 4.0, 8.0]
    expected, avg = [], None
    for n, v in enumerate(values):
        net.weight.data.fill_(v)
        ema.update_parameters(net)
        if avg is None:
            avg = v  # the first update copies
        else:
            d = min(0.5, (1 + n) / (10 + n))  # n updates averaged before this one
            avg = d * avg + (1 - d) * v
        expected.append(avg)
        assert ema.module.weight.item() == pytest.approx(avg, rel=1e-6)
    # n=1: d=2/11 -> 1*2/11 + 2*9/11; the cap 0.5 is reached at n=8, not within these steps
    assert expected[1] == pytest.approx(2 / 11 + 18 / 11)


def test_ema_warmup_is_a_config_switch(tmp_path):
    cfg = TrainConfig(ema_decay=0.99, ema_warmup=True)
    assert cfg.ema_warmup and TrainConfig().ema_warmup is False
