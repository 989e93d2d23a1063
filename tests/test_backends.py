"""The onnxruntime fp32/int8 and torch bf16 network calls agree with torch fp32 through the one
shared pre-/post-processing path; a shared onnxruntime Detector is thread-safe."""

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from facelandmarks_smt import Detector  # noqa: E402
from facelandmarks_smt.backends import OrtRunner, TorchRunner, int8_graph  # noqa: E402
from facelandmarks_smt.detector import MAX_BATCH, batch_size_for  # noqa: E402
from facelandmarks_smt.config import get_config  # noqa: E402
from facelandmarks_smt.images import load_image  # noqa: E402
from facelandmarks_smt.weights_io import save_weights  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BOX = np.array([178.0, 85.0, 260.0, 180.0])


@pytest.fixture(scope="module")
def crops():
    det = Detector.from_config("tiny", device="cpu")
    image = load_image(REPO / "examples" / "astronaut.jpg")
    rng = np.random.default_rng(0)
    boxes = BOX + rng.uniform(-8, 8, (8, 4))
    return det.crop(image, boxes)[0]


@pytest.fixture(scope="module")
def torch_det():
    return Detector.from_config("tiny", device="cpu", seed=1)


@pytest.fixture(scope="module")
def ort_det():
    return Detector.from_config("tiny", device="cpu", seed=1, backend="onnxruntime", threads=1)


@pytest.mark.parametrize("n", [1, 3])
def test_onnxruntime_fp32_matches_torch(torch_det, ort_det, crops, n):
    x = torch_det._to_input(crops[:n])
    th, tr = torch_det._runner(x)
    oh, orr = ort_det._runner(x)
    assert oh.shape == th.shape == (n, 68, 64, 64) and orr.shape == tr.shape == (n, 68, 2)
    assert (oh - th).abs().max() <= 1e-3 * th.abs().max()
    assert (orr - tr).abs().max() <= 1e-3 * max(tr.abs().max(), 1e-3)
    pt, st = torch_det.predict_crops(crops[:n], return_scores=True)
    po, so = ort_det.predict_crops(crops[:n], return_scores=True)
    assert np.abs(po - pt).max() <= 0.05
    np.testing.assert_allclose(so, st, atol=1e-3)


def test_onnxruntime_detect_matches_torch_in_image_pixels(torch_det, ort_det):
    image = load_image(REPO / "examples" / "astronaut.jpg")
    a = torch_det.detect(image, boxes=[BOX])[0]
    b = ort_det.detect(image, boxes=[BOX])[0]
    assert np.abs(a.landmarks - b.landmarks).max() <= 0.05 * (BOX[2] - BOX[0]) * 1.6 / 256 + 1e-3


def test_shared_onnxruntime_detector_is_thread_safe(ort_det, crops):
    expected = [ort_det.predict_crops(crops[i:i + 2]) for i in range(0, 8, 2)]
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                results[k] = ort_det.predict_crops(crops[2 * (k % 4):2 * (k % 4) + 2])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, pts in results.items():
        np.testing.assert_array_equal(pts, expected[k % 4])


def test_threads_reach_torch_and_onnxruntime(ort_det):
    assert ort_det._runner.session.get_session_options().intra_op_num_threads == 1
    det = Detector.from_config("tiny", device="cpu", threads=1)
    assert det._runner.threads == 1  # torch's count for this detector's calls only (test_layered_fixes.py)
    with pytest.raises(ValueError, match="threads"):
        Detector.from_config("tiny", device="cpu", threads=0)


def test_backend_and_precision_are_checked():
    with pytest.raises(ValueError, match="unknown backend"):
        Detector.from_config("tiny", device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="int8 runs on backend='onnxruntime'"):
        Detector.from_config("tiny", device="cpu", backend="torch", precision="int8")
    with pytest.raises(ValueError, match="unknown precision"):
        Detector.from_config("tiny", device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="bf16 runs on backend='torch'"):
        Detector.from_config("tiny", device="cpu", backend="onnxruntime", precision="bf16")


def test_int8_needs_calibration_or_a_cached_graph(monkeypatch, tmp_path):
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="calibration"):
        Detector.from_config("tiny", device="cpu", backend="onnxruntime", precision="int8")
    with pytest.raises(ValueError, match="calibration"):  # backend="auto" (the default) runs int8 on onnxruntime
        Detector.from_config("tiny", device="cpu", precision="int8")


def test_int8_is_quantised_cached_and_loosely_agrees(monkeypatch, tmp_path, torch_det, crops):
    import onnx

    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "tiny.safetensors"
    save_weights(torch_det.model, torch_det.config, weights)
    det = Detector(weights, device="cpu", backend="onnxruntime", precision="int8", calibration=crops, threads=1)
    cached = list((tmp_path / "cache").glob("*-int8-*.onnx"))
    assert len(cached) == 1
    graph = onnx.load(str(cached[0]))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: i for i in graph.graph.initializer}
    per_channel = [n for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits
                   and len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1]
    assert per_channel, "weights should be quantised per output channel"
    # the heads and the last stack's feature block (tiny: 2 stacks, features.1) but its first conv stay fp32:
    # their weights are plain initialisers, no DequantizeLinear in front of them; the first stack's block is int8
    dq_outputs = {n.output[0] for n in graph.graph.node if n.op_type == "DequantizeLinear"}
    first_conv = "/features.1/features.1.0/conv1/"
    kept = [n for n in graph.graph.node if n.op_type in ("Conv", "Gemm") and first_conv not in n.name
            and ("/heatmap_heads." in n.name or "/coord_heads." in n.name or "/features.1/" in n.name)]
    assert {n.op_type for n in kept} >= {"Conv", "Gemm"} and any("/features.1/" in n.name for n in kept)
    for n in kept:
        assert n.input[1] in inits and n.input[1] not in dq_outputs, f"{n.name} was quantised"
    body = [n for n in graph.graph.node if n.op_type == "Conv" and n not in kept]
    assert any("/features.0/" in n.name for n in body) and any(first_conv in n.name for n in body)
    assert body and all(n.input[1] in dq_outputs for n in body), "the body convolutions should be int8"
    # a second detector finds the cached graph without calibration data
    again = Detector(weights, device="cpu", backend="onnxruntime", precision="int8", threads=1)
    pts = again.predict_crops(crops[:3])
    assert pts.shape == (3, 68, 2) and np.isfinite(pts).all()
    assert ((pts >= -0.5) & (pts <= 255.5)).all()
    x = torch_det._to_input(crops[:3])
    qh, qr = det._runner(x)
    th, tr = torch_det._runner(x)
    corr = np.corrcoef(qh.numpy().ravel(), th.numpy().ravel())[0, 1]
    assert corr > 0.9, f"int8 heatmaps correlate {corr:.3f} with fp32"


def test_bf16_runs_channels_last_and_returns_fp32(torch_det, crops):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # emulated on CPUs without native bf16 (warned once)
        runner = TorchRunner(torch_det.model, "bf16")
    x = torch_det._to_input(crops[:2])
    h, r = runner(x)
    th, _ = torch_det._runner(x)
    assert h.dtype == torch.float32 and r.dtype == torch.float32 and h.shape == th.shape
    assert runner.model is not torch_det.model  # the fp32 model is left untouched
    corr = np.corrcoef(h.numpy().ravel(), th.numpy().ravel())[0, 1]
    assert corr > 0.98


def test_chunks_fit_the_memory_bound(torch_det, crops):
    small = get_config("small")
    assert batch_size_for(small, 1e9) == MAX_BATCH
    assert batch_size_for(small, 1) == 1
    assert batch_size_for(small, 512) < batch_size_for(get_config("tiny"), 512)
    det = Detector(torch_det.model, device="cpu", memory_limit_mb=1)
    assert det.batch_size == 1
    np.testing.assert_allclose(det.predict_crops(crops[:3]), torch_det.predict_crops(crops[:3]), atol=1e-4)


def test_passive_wait_policy_stops_onnxruntime_spinning(monkeypatch, torch_det):
    from facelandmarks_smt.export import export_onnx

    graph = export_onnx(torch_det.model)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    opts = OrtRunner(graph, threads=1).session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    opts = OrtRunner(graph, threads=1).session.get_session_options()
    try:
        spinning = opts.get_session_config_entry("session.intra_op.allow_spinning")
    except RuntimeError:  # not set: ORT's default, spinning allowed
        spinning = None
    assert spinning != "0"
