"""Validation scored per part (real faces, synthesized poses, degraded copies): `Trainer(val_parts=...)`
and ``train --extra-val-data``."""

import json
import os

import numpy as np

from conftest import synthetic_faces
from facelandmarks_smt.datasets import write_pts
from facelandmarks_smt.training.trainer import Trainer
from test_trainer import micro_train_config


def test_validate_scores_each_part_and_the_whole(tmp_path):
    a, b = synthetic_faces(6, seed=1), synthetic_faces(4, seed=2)
    val = a + b  # synthetic_faces returns lists of (image, points, meta)
    tr = Trainer(micro_train_config(), a, val, tmp_path / "run", device="cpu", progress=False,
                 val_parts={"first": (0, 6), "second": (6, 10)})
    m = tr.validate()
    assert m["val_faces"] == 10
    # the whole is the face-weighted mean of the parts
    assert np.isclose(m["val_nme"], (6 * m["val_nme_first"] + 4 * m["val_nme_second"]) / 10, rtol=1e-6)
    assert {"val_fr8_first", "val_fr8_second"} <= set(m)


def test_train_cli_extra_val_data_is_recorded_and_scored(tmp_path):
    from facelandmarks_smt.training.cli import main

    def folder(name, n, seed):
        d = tmp_path / name
        d.mkdir()
        import cv2

        for k, (img, pts, _) in enumerate(synthetic_faces(n, seed=seed)):
            cv2.imwrite(str(d / f"{name}{k}.png"), img[:, :, ::-1])
            write_pts(d / f"{name}{k}.pts", pts)
        return str(d)

    data, extra = folder("train", 10, 1), folder("hard", 3, 2)
    cfg = tmp_path / "cfg.json"
    c = micro_train_config().to_dict()
    c["val_fraction"] = 0.3
    cfg.write_text(json.dumps(c))
    out = tmp_path / "run"
    assert main(["train", "--data", data, "--extra-val-data", extra, "--config", str(cfg), "--out", str(out),
                 "--max-steps", "1", "--no-progress", "--device", "cpu"]) == 0
    lists = json.loads((out / "data_lists.json").read_text())
    assert lists["val_parts"] == {"real": [0, 3], "hard": [3, 6]}
    rec = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][-1]
    assert "val_nme_hard" in rec and "val_nme_real" in rec


def test_selection_bars_keep_a_validation_that_fails_a_part_from_being_best(tmp_path):
    import dataclasses
    import math

    a, b = synthetic_faces(6, seed=1), synthetic_faces(4, seed=2)
    cfg = dataclasses.replace(micro_train_config(), select_max_nme={"first": 1e-6})
    tr = Trainer(cfg, a, a + b, tmp_path / "run", device="cpu", progress=False,
                 val_parts={"first": (0, 6), "second": (6, 10)})
    m = {"val_nme": 5.0, "val_nme_argmax": 5.0, "val_nme_first": 4.0, "val_nme_second": 6.5}
    assert not tr.meets_selection_bars(m)
    tr._end_of_validation(m)
    assert tr.state["best_nme"] == math.inf and not (tmp_path / "run" / "best.safetensors").exists()
    rec = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert rec["meets_bars"] is False and "best" not in rec
    # the same numbers under a bar they meet are the best so far
    tr.cfg = dataclasses.replace(cfg, select_max_nme={"first": 4.0, "all": 5.0})
    assert tr.meets_selection_bars(m)
    tr._end_of_validation(m)
    assert tr.state["best_nme"] == 5.0 and (tmp_path / "run" / "best.safetensors").exists()


def test_selection_bars_must_name_a_validation_part(tmp_path):
    import dataclasses

    import pytest

    a = synthetic_faces(4, seed=1)
    cfg = dataclasses.replace(micro_train_config(), select_max_nme={"turned": 8.0})
    with pytest.raises(ValueError, match="select_max_nme names validation parts.*turned"):
        Trainer(cfg, a, a, tmp_path / "run", device="cpu", progress=False, val_parts={"real": (0, 4)})
    with pytest.raises(ValueError, match="select_max_nme values"):
        dataclasses.replace(micro_train_config(), select_max_nme={"real": -1})


def test_val_every_steps_validates_inside_an_epoch(tmp_path):
    import dataclasses

    a = synthetic_faces(8, seed=1)
    cfg = dataclasses.replace(micro_train_config(), batch_size=2, epochs=1, val_every_steps=2)
    tr = Trainer(cfg, a, a[:2], tmp_path / "run", device="cpu", progress=False)
    assert tr.steps_per_epoch == 4
    tr.run()
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # step 2 mid-epoch, step 4 at the epoch's end (not twice)
