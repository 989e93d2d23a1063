"""``train --init WEIGHTS`` without ``--config`` fine-tunes with the `finetune` preset and the init
weights' own model settings (issue #17: the paper schedule from an init destroyed the start)."""

import json

import cv2
import torch

from conftest import synthetic_faces
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.training.cli import main
from facelandmarks_smt.training.config import load_train_config
from facelandmarks_smt.datasets import write_pts
from facelandmarks_smt.weights_io import save_weights
from test_trainer import micro_model


def test_finetune_preset_is_gentle():
    c = load_train_config("finetune")
    assert c.sigma_mode == "fixed" and c.sigmas == (2.0,)
    assert c.lr <= 2e-4 and c.warmup_steps > 0 and c.ema_decay > 0


def test_init_without_config_uses_finetune_and_the_init_model(tmp_path):
    data = tmp_path / "faces"
    data.mkdir()
    for k, (img, pts, _) in enumerate(synthetic_faces(12, seed=3)):
        cv2.imwrite(str(data / f"f{k}.png"), img[:, :, ::-1])
        write_pts(data / f"f{k}.pts", pts)
    mcfg = micro_model()
    torch.manual_seed(0)
    save_weights(SMTNet(mcfg).state_dict(), mcfg, tmp_path / "init.safetensors")
    out = tmp_path / "run"
    rc = main(["train", "--data", str(data), "--init", str(tmp_path / "init.safetensors"), "--out", str(out),
               "--max-steps", "1", "--no-progress", "--device", "cpu",
               "--set", "precision=fp32", "augment.flip_prob=0", "val_fraction=0.25", "batch_size=4"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sigmas"] == [2.0] and cfg["lr"] == 2e-4 and cfg["sigma_mode"] == "fixed"
    assert cfg["model"]["width"] == mcfg.width and cfg["model"]["input_size"] == mcfg.input_size
    assert cfg["model"]["crop_factor"] == mcfg.crop_factor
