"""The shipped OpenVINO int8 model (`training.openvino_int8`, `quantize-openvino`): built with NNCF on a
micro model, found by its weights' sha256, run by `Detector(backend="openvino", precision="int8")`,
and refused when a file no longer matches its record."""

import json

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

from conftest import synthetic_faces  # noqa: E402
from facelandmarks_smt import Detector  # noqa: E402
from facelandmarks_smt.models import SMTNet  # noqa: E402
from facelandmarks_smt.runtime.graphs import shipped_openvino_int8  # noqa: E402
from facelandmarks_smt.runtime.openvino_backend import OpenVINORunner  # noqa: E402
from facelandmarks_smt.training.cli import main  # noqa: E402
from facelandmarks_smt.training.openvino_int8 import build_openvino_int8, quantised_ops  # noqa: E402
from facelandmarks_smt.weights_io import save_weights, sha256_file  # noqa: E402
from test_trainer import _write_pts_folder, micro_model  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ovint8")
    _write_pts_folder(root / "data", synthetic_faces(30, seed=5))
    cfg = micro_model()
    torch.manual_seed(0)
    weights = root / "weights" / "micro.safetensors"
    weights.parent.mkdir()
    save_weights(SMTNet(cfg).eval(), cfg, weights)
    record = build_openvino_int8(weights, [root / "data"], root / "weights" / "micro.openvino-int8",
                                 max_drop=1000.0, num_calibration=16, log=lambda s: None)
    return root, weights, record


def test_build_writes_the_model_and_its_record(built):
    root, weights, record = built
    xml = root / "weights" / "micro.openvino-int8.xml"
    saved = json.loads(xml.with_suffix(".json").read_text())
    assert saved == record
    assert record["weights_sha256"] == sha256_file(weights)
    assert record["xml_sha256"] == sha256_file(xml)
    assert record["bin_sha256"] == sha256_file(xml.with_suffix(".bin"))
    assert record["validation"]["faces"] == 3  # 10 % of 30: the trainer's split
    assert record["recipe"]["calibration"]["num_crops"] == 16 and not record["recipe"]["accuracy_control"]
    # NNCF's settings, not the onnxruntime QDQ graph's (MinMax, fp32 feature block) the crops' recipe carries
    assert record["recipe"]["preset"] == "performance" and "calibration_method" not in record["recipe"]["calibration"]
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    assert len(quantised_ops(model)) > 10  # the convolutions run int8
    assert {p.get_any_name() for p in model.outputs} >= {"heatmaps", "residuals"}


def test_detector_runs_the_shipped_model_of_its_weights(built, monkeypatch):
    root, weights, record = built
    monkeypatch.setenv("FACELANDMARKS_SMT_WEIGHTS", str(root / "weights"))
    assert shipped_openvino_int8(record["weights_sha256"]) == root / "weights" / "micro.openvino-int8.xml"
    assert shipped_openvino_int8("0" * 64) is None  # other weights: not theirs
    det = Detector(weights, device="cpu", backend="openvino", precision="int8", threads=1)
    assert isinstance(det._runner, OpenVINORunner)
    ref = Detector(weights, device="cpu", backend="torch", precision="fp32", threads=1)
    img, pts, _ = synthetic_faces(1, seed=11)[0]
    box = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
    crops, _ = ref.crop(img, [box])
    h8, r8 = det._runner(ref._to_input(crops))
    h32, r32 = ref._runner(ref._to_input(crops))
    assert h8.shape == h32.shape and r8.shape == r32.shape
    # int8 against fp32 on random weights: close, not equal
    err = (h8 - h32).abs().mean() / h32.abs().mean()
    assert 0 < float(err) < 0.2


def test_a_changed_file_is_refused(built, tmp_path, monkeypatch):
    root, weights, record = built
    import shutil

    copy = tmp_path / "w"
    shutil.copytree(root / "weights", copy)
    monkeypatch.setenv("FACELANDMARKS_SMT_WEIGHTS", str(copy))
    data = bytearray((copy / "micro.openvino-int8.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "micro.openvino-int8.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the sha256"):
        shipped_openvino_int8(record["weights_sha256"])
    (copy / "micro.openvino-int8.bin").unlink()
    with pytest.raises(ValueError, match="is missing"):
        shipped_openvino_int8(record["weights_sha256"])


def test_cli_names_bad_input(built, capsys):
    root, weights, _ = built
    assert main(["quantize-openvino", "--weights", str(weights), "--data", str(root / "data"), "--out",
                 str(root / "x"), "--keep-fp32", "/no/such/op"]) == 2
    assert "does not have" in capsys.readouterr().err
    # more validation faces: the split's 3 and a folder's 5 (the accuracy search itself is not run here)
    _write_pts_folder(root / "more", synthetic_faces(5, seed=9))
    rec = build_openvino_int8(weights, [root / "data"], root / "z", max_drop=1000.0, num_calibration=8,
                              extra_val_data=[root / "more"], log=lambda s: None)
    assert rec["validation"]["faces"] == 8 and "more" in rec["validation"]["split"]
    with pytest.raises(ValueError, match="max_drop"):
        build_openvino_int8(weights, [root / "data"], root / "y", max_drop=-1)
    assert not (root / "x.xml").exists()
