import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from facelandmarks_smt import Detector  # noqa: E402
from facelandmarks_smt.export import (OPSET, add_export_parser, cached_onnx, export_onnx, onnx_config,  # noqa: E402
                                      run_export)
from facelandmarks_smt.weights_io import save_weights  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny():
    return Detector.from_config("tiny", device="cpu").model


def test_export_checks_and_has_dynamic_batch_and_config(tiny, tmp_path):
    path = export_onnx(tiny, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == OPSET
    inp = proto.graph.input[0]
    assert inp.name == "input" and inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [o.name for o in proto.graph.output] == ["heatmaps", "residuals"]
    assert onnx_config(path) == tiny.config
    assert not tiny.training  # export leaves the caller's model in eval mode


def test_exported_graph_matches_last_stack_for_several_batch_sizes(tiny):
    sess = ort.InferenceSession(export_onnx(tiny), providers=["CPUExecutionProvider"])
    for b in (1, 4):
        x = torch.randn(b, 3, 256, 256, generator=torch.Generator().manual_seed(b))
        h, r = sess.run(None, {"input": x.numpy()})
        with torch.no_grad():
            th, tr = tiny(x)[-1]
        assert h.shape == (b, 68, 64, 64) and r.shape == (b, 68, 2)
        assert np.abs(h - th.numpy()).max() <= 1e-3 * np.abs(th.numpy()).max()
        np.testing.assert_allclose(r, tr.numpy(), atol=1e-4)


def test_export_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="SMTNet"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")


def test_cached_export_is_reused(tiny, tmp_path):
    a = cached_onnx(tiny, "ab" * 32, directory=tmp_path)
    mtime = a.stat().st_mtime_ns
    b = cached_onnx(tiny, "ab" * 32, directory=tmp_path)
    assert a == b and b.stat().st_mtime_ns == mtime
    assert "abab" in a.name and list(tmp_path.glob("*.tmp")) == []


def test_cli_glue_and_module_entry_point(tiny, tmp_path):
    weights = tmp_path / "tiny.safetensors"
    save_weights(tiny, tiny.config, weights)
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--weights", str(weights), "--out", str(tmp_path / "a.onnx")])
    assert run_export(args) == 0 and onnx_config(tmp_path / "a.onnx") == tiny.config
    r = subprocess.run([sys.executable, "-m", "facelandmarks_smt.export", "--weights", str(weights), "--out",
                        str(tmp_path / "b.onnx")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"opset": 17' in r.stdout and (tmp_path / "b.onnx").is_file()


def test_cli_int8_without_calibration_is_an_error(tiny, tmp_path):
    weights = tmp_path / "tiny.safetensors"
    save_weights(tiny, tiny.config, weights)
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--weights", str(weights), "--out", str(tmp_path / "q.onnx"), "--int8"])
    with pytest.raises(ValueError, match="calibration"):
        run_export(args)


def test_trunk_export_is_all_but_the_last_heads(tiny, tmp_path):
    """part="trunk" (what openvino bf16 runs): its outputs, fed to `SMTNet.last_heads`, give the full
    graph's heatmaps and residuals; cached apart from the full graph."""
    from facelandmarks_smt.runtime.export import cached_onnx as cached, export_onnx as export

    proto = onnx.load_from_string(export(tiny, part="trunk"))
    assert [o.name for o in proto.graph.output] == ["features", "centre"]
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    features, centre = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        th, tr = tiny(x)[-1]
        h, r = tiny.last_heads(torch.from_numpy(features), torch.from_numpy(centre))
        tf, tc = tiny.trunk(x)
    assert features.shape == tuple(tf.shape) and centre.shape == tuple(tc.shape)
    assert np.abs(h.numpy() - th.numpy()).max() <= 1e-3 * np.abs(th.numpy()).max()
    np.testing.assert_allclose(r.numpy(), tr.numpy(), atol=1e-4)
    full, trunk = cached(tiny, "cd" * 32, directory=tmp_path), cached(tiny, "cd" * 32, directory=tmp_path, part="trunk")
    assert full != trunk and "-trunk-" in trunk.name and "-trunk-" not in full.name
    heads = onnx.load_from_string(export(tiny, part="heads"))
    assert [i.name for i in heads.graph.input] == ["features", "centre"]
    assert [o.name for o in heads.graph.output] == ["heatmaps", "residuals"]
    hs = ort.InferenceSession(heads.SerializeToString(), providers=["CPUExecutionProvider"])
    gh, gr = hs.run(None, {"features": features, "centre": centre})
    assert np.abs(gh - h.numpy()).max() <= 1e-4 * np.abs(h.numpy()).max()
    np.testing.assert_allclose(gr, r.numpy(), atol=1e-5)
    assert "-heads-" in cached(tiny, "cd" * 32, directory=tmp_path, part="heads").name
    with pytest.raises(ValueError, match="part must be one of"):
        export(tiny, part="neck")
