"""``training export --weights OUT/last.pt``: a run's last validated weights (its EMA average),
for runs whose best never met a selection bar."""

import dataclasses
import json

import pytest
import torch

from conftest import synthetic_faces
from facelandmarks_smt.training.cli import main
from facelandmarks_smt.training.trainer import Trainer
from facelandmarks_smt.weights_io import load_weights, read_metadata
from test_trainer import micro_train_config


def test_export_of_a_checkpoint_writes_the_weights_the_run_validated(tmp_path):
    faces = synthetic_faces(4, seed=1)
    cfg = dataclasses.replace(micro_train_config(), ema_decay=0.9, epochs=3, stage_epochs=(3,))
    tr = Trainer(cfg, faces, faces, tmp_path / "run", device="cpu", progress=False)
    tr.run()
    out = tmp_path / "last.safetensors"
    assert main(["export", "--weights", str(tmp_path / "run" / "last.pt"), "--out", str(out)]) == 0
    _, state, _ = load_weights(out)
    want = tr.eval_model().state_dict()  # the EMA average: what validate() scored
    assert set(state) == set(want)
    for k, v in want.items():
        assert torch.equal(state[k].to(v.dtype), v), k
    raw = tr.model.state_dict()
    assert any(not torch.equal(raw[k], want[k]) for k in want if want[k].is_floating_point())  # EMA, not raw
    meta = read_metadata(out)
    assert meta["checkpoint_weights"] == "ema"
    assert json.loads(meta["metrics"])["val_nme"] == pytest.approx(tr.state["history"][-1]["val_nme"])


def test_export_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"weights": 1}, bad)
    assert main(["export", "--weights", str(bad), "--out", str(tmp_path / "y.safetensors")]) == 2
