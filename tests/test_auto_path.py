"""``backend="auto"`` / ``precision="auto"`` (the defaults, issue 16): the path is chosen from the CPU's
features (`runtime.backends.auto_path`), explicit choices are kept, and bf16 on a CPU without native
bf16 warns once per process, naming the faster choice. The capability checks are monkeypatched both
ways, so these tests do not depend on the CPU running them."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from facelandmarks_smt import Detector
from facelandmarks_smt.runtime import backends, device
from facelandmarks_smt.runtime.backends import OrtRunner, TorchRunner, auto_path, resolve_path
from facelandmarks_smt.weights_io import save_weights

from conftest import synthetic_faces

pytestmark = pytest.mark.real_auto_path  # conftest pins "auto" to torch fp32 everywhere else

CPU = torch.device("cpu")


@pytest.fixture
def cpu(monkeypatch):
    """``cpu(native_bf16, ort, ov)`` patches the three things the rule reads (openvino absent unless
    asked), and forgets that the slow-bf16 warning was given (it is given once per process)."""
    monkeypatch.setattr(backends, "_slow_bf16_warned", False)

    def set_cpu(native_bf16: bool, ort: bool = True, ov: bool = False) -> None:
        monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: native_bf16)
        monkeypatch.setattr(backends, "onnxruntime_available", lambda: ort)
        monkeypatch.setattr(backends, "openvino_available", lambda: ov)
        monkeypatch.setattr(backends, "_openvino_runs_bf16", lambda: ov and native_bf16)

    return set_cpu


def test_the_rule(cpu):
    cpu(native_bf16=True)
    assert auto_path(CPU) == ("torch", "bf16")
    cpu(native_bf16=True, ort=False)
    assert auto_path(CPU) == ("torch", "bf16")
    cpu(native_bf16=False)
    assert auto_path(CPU) == ("onnxruntime", "fp32")
    cpu(native_bf16=False, ort=False)
    assert auto_path(CPU) == ("torch", "fp32")
    for native in (True, False):  # CUDA: as before, whatever the CPU
        cpu(native_bf16=native)
        assert auto_path(torch.device("cuda")) == ("torch", "fp32")


def test_the_rule_with_openvino_installed(cpu):
    cpu(native_bf16=True, ov=True)  # openvino bf16 beat torch bf16 in every cell on the AVX-512 machine
    assert auto_path(CPU) == ("openvino", "bf16")
    cpu(native_bf16=True, ort=False, ov=True)
    assert auto_path(CPU) == ("openvino", "bf16")
    cpu(native_bf16=False, ov=True)  # without native bf16 openvino does not change the default
    assert auto_path(CPU) == ("onnxruntime", "fp32")
    cpu(native_bf16=False, ort=False, ov=True)
    assert auto_path(CPU) == ("torch", "fp32")
    cpu(native_bf16=True, ov=True)
    assert auto_path(torch.device("cuda")) == ("torch", "fp32")
    # precision "auto" for an explicit backend: bf16 where the CPU has it natively and the backend runs it
    assert resolve_path("torch", "auto", CPU) == ("torch", "bf16")
    assert resolve_path("openvino", "auto", CPU) == ("openvino", "bf16")
    assert resolve_path("onnxruntime", "auto", CPU) == ("onnxruntime", "fp32")
    cpu(native_bf16=False, ov=True)
    assert resolve_path("openvino", "auto", CPU) == ("openvino", "fp32")
    cpu(native_bf16=True, ov=False)  # native bf16 but OpenVINO's plugin does not list it (or is missing): fp32
    assert resolve_path("openvino", "auto", CPU) == ("openvino", "fp32")


def test_auto_openvino_falls_back_to_torch_bf16_when_it_cannot_start(cpu, monkeypatch, tmp_path):
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    cpu(native_bf16=True, ov=True)

    def broken(*args, **kwargs):
        raise RuntimeError("no OpenVINO CPU plugin here")

    monkeypatch.setattr(backends, "OpenVINORunner", broken)
    monkeypatch.setattr(backends, "import_openvino", lambda: None)
    monkeypatch.setattr(backends, "check_openvino_precision", lambda precision: None)
    with pytest.warns(RuntimeWarning, match="openvino bf16, which failed.*no OpenVINO CPU plugin.*torch bf16"):
        det = Detector.from_config("tiny", device="cpu", threads=1)
    assert (det.backend, det.precision) == ("torch", "bf16") and isinstance(det._runner, TorchRunner)
    with pytest.raises(RuntimeError, match="no OpenVINO CPU plugin"):  # an explicit openvino still fails loudly
        Detector.from_config("tiny", device="cpu", backend="openvino", precision="bf16")


def test_int8_only_for_weights_with_shipped_ranges_on_native_bf16_cpus_with_openvino(cpu):
    """int8 is chosen only where it was measured within the NME budget and faster: openvino on a
    native-bf16 (and so VNNI) CPU, for weights that ship int8 ranges; never by a half-auto request."""
    cpu(native_bf16=True, ov=True)
    assert auto_path(CPU, int8_ready=True) == ("openvino", "int8")
    assert auto_path(CPU) == ("openvino", "bf16")
    cpu(native_bf16=True, ov=False)
    assert auto_path(CPU, int8_ready=True) == ("torch", "bf16")
    cpu(native_bf16=False, ov=True)
    assert auto_path(CPU, int8_ready=True) == ("onnxruntime", "fp32")
    assert auto_path(torch.device("cuda"), int8_ready=True) == ("torch", "fp32")
    for native in (True, False):
        for ort in (True, False):
            for ov in (True, False):
                cpu(native, ort, ov)
                for backend in ("auto", "torch", "onnxruntime", "openvino"):
                    if backend == "auto" or ov or backend != "openvino":
                        assert resolve_path(backend, "auto", CPU)[1] != "int8"
    assert backends.fallback_path("openvino", "int8") == ("openvino", "bf16")
    # the same question for a weights file, as Detector and the benchmarks ask it
    from facelandmarks_smt import hub

    shipped = hub.REGISTRY["smtnet-300w-tiny"].sha256
    cpu(native_bf16=True, ov=True)
    assert backends.auto_int8_ready(CPU, shipped) and not backends.auto_int8_ready(CPU, None)
    assert not backends.auto_int8_ready(CPU, "0" * 64)  # no ranges ship for these weights
    cpu(native_bf16=False, ov=True)
    assert not backends.auto_int8_ready(CPU, shipped)


def test_auto_runs_openvino_int8_for_the_shipped_tiny(cpu, monkeypatch, tmp_path):
    pytest.importorskip("openvino")
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    cpu(native_bf16=True, ov=True)
    det = Detector.from_pretrained("smtnet-300w-tiny", device="cpu", threads=1)
    assert (det.backend, det.precision) == ("openvino", "int8")
    assert len(list(tmp_path.glob("*-int8-*.onnx"))) == 1  # built from the shipped ranges, no data given
    other = tmp_path / "other.safetensors"  # weights that ship no ranges: not int8
    save_weights(det.model, det.config, other)
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)  # so that this runs on every CPU
    assert Detector(other, device="cpu", threads=1).precision != "int8"


def test_auto_openvino_int8_falls_back_to_openvino_bf16(cpu, monkeypatch, tmp_path):
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    cpu(native_bf16=True, ov=True)
    made = []

    class FakeRunner:
        def __init__(self, graph, precision, threads, heads=None, decoder=None):
            made.append(precision)

    def no_int8(*args, **kwargs):
        raise ValueError("the int8 ranges do not fit this graph")

    monkeypatch.setattr(backends, "int8_graph", no_int8)
    monkeypatch.setattr(backends, "OpenVINORunner", FakeRunner)
    monkeypatch.setattr(backends, "import_openvino", lambda: None)
    monkeypatch.setattr(backends, "check_openvino_precision", lambda precision: None)
    with pytest.warns(RuntimeWarning, match="openvino int8, which failed.*do not fit.*openvino bf16"):
        det = Detector.from_pretrained("smtnet-300w-tiny", device="cpu", threads=1)
    assert (det.backend, det.precision) == ("openvino", "bf16") and made == ["bf16"]


def test_half_auto_and_explicit_requests(cpu):
    cpu(native_bf16=True)
    assert resolve_path("torch", "auto", CPU) == ("torch", "bf16")
    assert resolve_path("onnxruntime", "auto", CPU) == ("onnxruntime", "fp32")
    assert resolve_path("auto", "fp32", CPU) == ("torch", "fp32")  # an explicit fp32 stays torch, as before
    assert resolve_path("auto", "bf16", CPU) == ("torch", "bf16")
    assert resolve_path("auto", "int8", CPU) == ("onnxruntime", "int8")  # the backend that runs int8
    cpu(native_bf16=False)
    assert resolve_path("torch", "auto", CPU) == ("torch", "fp32")
    assert resolve_path("onnxruntime", "auto", CPU) == ("onnxruntime", "fp32")
    for native in (True, False):
        cpu(native)
        for backend, precision in [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"),
                                   ("onnxruntime", "int8")]:
            assert resolve_path(backend, precision, CPU) == (backend, precision)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_path("auto", "fp16", CPU)
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_path("tensorrt", "auto", CPU)
    with pytest.raises(ValueError, match="int8 runs on backend='onnxruntime'"):
        resolve_path("torch", "int8", CPU)
    with pytest.raises(ValueError, match="bf16 runs on backend='torch'"):
        resolve_path("onnxruntime", "bf16", CPU)


def test_detector_default_with_native_bf16(cpu):
    cpu(native_bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no slow-bf16 warning where bf16 is native
        det = Detector.from_config("tiny", device="cpu")
    assert (det.backend, det.precision) == ("torch", "bf16")
    assert isinstance(det._runner, TorchRunner) and det._runner.precision == "bf16"
    assert "backend='torch', precision='bf16'" in repr(det)
    pts = det.predict_crops(np.zeros((1, 256, 256, 3), np.uint8))
    assert pts.shape == (1, 68, 2) and pts.dtype == np.float32 and np.isfinite(pts).all()


def test_detector_default_without_native_bf16(cpu, monkeypatch, tmp_path):
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    cpu(native_bf16=False, ort=True)
    det = Detector.from_config("tiny", device="cpu", threads=1)
    assert (det.backend, det.precision) == ("onnxruntime", "fp32")
    assert isinstance(det._runner, OrtRunner)
    assert "backend='onnxruntime', precision='fp32'" in repr(det)
    cpu(native_bf16=False, ort=False)
    det = Detector.from_config("tiny", device="cpu")
    assert (det.backend, det.precision) == ("torch", "fp32")
    assert isinstance(det._runner, TorchRunner) and det._runner.precision == "fp32"


def test_explicit_choices_are_kept(cpu):
    cpu(native_bf16=True)
    det = Detector.from_config("tiny", device="cpu", backend="torch", precision="fp32")
    assert (det.backend, det.precision, det._runner.precision) == ("torch", "fp32", "fp32")
    det = Detector.from_config("tiny", device="cpu", precision="fp32")
    assert (det.backend, det.precision) == ("torch", "fp32")
    cpu(native_bf16=False)
    with pytest.raises(ValueError, match="int8 runs on backend='onnxruntime'"):
        Detector.from_config("tiny", device="cpu", backend="torch", precision="int8")


def test_bf16_without_native_support_warns_once_naming_the_faster_choice(cpu):
    cpu(native_bf16=False, ort=True)
    with pytest.warns(UserWarning, match="no native bf16.*backend='onnxruntime', precision='fp32'") as record:
        det = Detector.from_config("tiny", device="cpu", precision="bf16")
    assert (det.backend, det.precision) == ("torch", "bf16")  # the explicit choice is still honoured
    slow = [w for w in record if "native bf16" in str(w.message)]
    assert len(slow) == 1 and slow[0].filename == __file__  # it points at the caller's line
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        Detector.from_config("tiny", device="cpu", precision="bf16")
        Detector.from_config("tiny", device="cpu", backend="torch", precision="bf16")
        TorchRunner(det.model, "bf16")
    assert not [w for w in again if "native bf16" in str(w.message)]  # once per process


def test_bf16_warning_names_torch_fp32_without_onnxruntime(cpu):
    cpu(native_bf16=False, ort=False)
    with pytest.warns(UserWarning, match="backend='torch', precision='fp32' is faster"):
        Detector.from_config("tiny", device="cpu", precision="bf16")


def test_auto_onnxruntime_falls_back_to_torch_when_it_cannot_start(cpu, monkeypatch):
    cpu(native_bf16=False, ort=True)

    def broken(*args, **kwargs):
        raise RuntimeError("no onnxruntime here")

    monkeypatch.setattr(backends, "OrtRunner", broken)
    with pytest.warns(RuntimeWarning, match="onnxruntime fp32, which failed.*torch fp32"):
        det = Detector.from_config("tiny", device="cpu")
    assert (det.backend, det.precision) == ("torch", "fp32") and isinstance(det._runner, TorchRunner)
    with pytest.raises(RuntimeError, match="no onnxruntime"):  # an explicit onnxruntime still fails loudly
        Detector.from_config("tiny", device="cpu", backend="onnxruntime")


def test_cli_defaults_to_auto_and_records_the_choice(cpu, monkeypatch, tmp_path):
    from facelandmarks_smt import cli
    from facelandmarks_smt.weights_io import save_weights

    args = cli.build_parser().parse_args(["detect", "x.png", "--out", "o"])
    assert (args.backend, args.precision) == ("auto", "auto")
    cpu(native_bf16=True)
    weights = tmp_path / "tiny.safetensors"
    det = Detector.from_config("tiny", device="cpu", backend="torch", precision="fp32")
    save_weights(det.model, det.config, weights)
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), synthetic_faces(1, size=96)[0][0])
    rc = cli.main(["detect", str(img), "--out", str(tmp_path / "out"), "--weights", str(weights), "--device", "cpu",
                   "--threads", "1", "--no-progress", "--no-annotate"])
    assert rc == 0
    model = json.loads((tmp_path / "out" / "results.json").read_text())["model"]
    assert (model["backend"], model["precision"]) == ("torch", "bf16")


def test_cpu_bf16_check_reads_the_flags(monkeypatch):
    check = device.cpu_has_native_bf16.__wrapped__  # the cached function, uncached

    class Info:
        text = ""

        def __init__(self, path):
            pass

        def read_text(self):
            if Info.text is None:
                raise OSError("no /proc here")
            return Info.text

    monkeypatch.setattr(device, "Path", Info)
    for flags, expected in [("fpu sse2 avx2 avx512f avx512bw avx512_vnni", False),
                            ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
                            ("fpu avx2 avx512f amx_tile amx_bf16 amx_int8", True),
                            ("fpu avx2 xavx512_bf16x", False)]:
        Info.text = "flags\t\t: " + flags + "\n"
        assert check() is expected, flags
    Info.text = None  # no /proc/cpuinfo: torch's dispatch level rules out CPUs below AVX-512
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert check() is False
