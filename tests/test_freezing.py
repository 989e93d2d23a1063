"""``freeze_stacks``: the stem and early stacks keep their loaded weights and BatchNorm statistics while
the last stack learns (fine-tuning with frozen early stages, issue #17)."""

import pytest
import torch

from conftest import synthetic_faces
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.training.freezing import early_stage_modules
from facelandmarks_smt.training.trainer import Trainer
from test_trainer import micro_model, micro_train_config


def _module_names(model, modules):
    ids = {id(m) for m in modules}
    return {n for n, m in model.named_modules() if id(m) in ids}


def test_early_stage_modules_cover_the_stem_and_the_first_stacks():
    model = SMTNet(micro_model(num_stacks=3))
    assert early_stage_modules(model, 0) == []
    names = _module_names(model, early_stage_modules(model, 2))
    assert names == {"stem", "hourglasses.0", "hourglasses.1", "features.0", "features.1", "heatmap_heads.0",
                     "heatmap_heads.1", "coord_heads.0", "coord_heads.1", "merge_features.0", "merge_features.1",
                     "merge_heatmaps.0", "merge_heatmaps.1"}
    with pytest.raises(ValueError, match="last always learns"):
        early_stage_modules(model, 3)


def test_config_rejects_freezing_every_stack():
    with pytest.raises(ValueError, match="freeze_stacks"):
        micro_train_config(freeze_stacks=2)
    with pytest.raises(ValueError, match="freeze_stacks"):
        micro_train_config(freeze_stacks=True)


def test_frozen_stages_stay_as_loaded_and_the_last_stack_learns(tmp_path):
    faces = synthetic_faces(8, seed=2)
    torch.manual_seed(0)
    start = SMTNet(micro_model()).state_dict()
    cfg = micro_train_config(freeze_stacks=1, epochs=2, stage_epochs=(2,), lr=3e-3)
    tr = Trainer(cfg, faces, faces[:4], tmp_path, device="cpu", progress=False, init_weights=start)
    for batch in tr.batches.epoch_batches(0):
        tr.train_step(batch)
    after = tr.model.state_dict()
    frozen = ("stem.", "hourglasses.0.", "features.0.", "heatmap_heads.0.", "coord_heads.0.",
              "merge_features.0.", "merge_heatmaps.0.")
    moved = {k for k in start if not torch.equal(start[k], after[k])}
    # weights and BatchNorm running statistics of the early stages are bit-identical ...
    assert not {k for k in moved if k.startswith(frozen)}
    # ... while the last stack's weights and statistics moved
    assert any(k.startswith("hourglasses.1.") and k.endswith("weight") for k in moved)
    assert any(k.startswith("features.1.") and k.endswith("running_mean") for k in moved)
    trainable = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    assert trainable == {id(p) for n, p in tr.model.named_parameters() if not n.startswith(frozen)}


def test_frozen_bn_stats_keep_the_running_statistics_while_every_weight_learns(tmp_path):
    faces = synthetic_faces(8, seed=2)
    torch.manual_seed(0)
    start = SMTNet(micro_model()).state_dict()
    cfg = micro_train_config(freeze_bn_stats=True, epochs=2, stage_epochs=(2,), lr=3e-3)
    tr = Trainer(cfg, faces, faces[:4], tmp_path, device="cpu", progress=False, init_weights=start)
    for batch in tr.batches.epoch_batches(0):
        tr.train_step(batch)
    after = tr.model.state_dict()
    stats = [k for k in start if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(start[k], after[k]) for k in stats)
    bn_weights = [k for k in start if k.replace("weight", "running_mean") in start and k.endswith("weight")]
    assert bn_weights and any(not torch.equal(start[k], after[k]) for k in bn_weights)  # BN scales learn
    assert {id(p) for g in tr.optimizer.param_groups for p in g["params"]} == {id(p) for p in tr.model.parameters()}
    with pytest.raises(ValueError, match="freeze_bn_stats"):
        micro_train_config(freeze_bn_stats="yes")
