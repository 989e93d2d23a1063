"""Decoding inside the graph runtimes: `runtime.export.export_decoder_onnx` traces `codec.HeatmapDecoder`
(the torch decoding itself), and onnxruntime and OpenVINO run that graph right after the network
(`Runner.decoded`). It must give the torch decoding's points (exactly, or to OpenVINO's last bit) and its scores to float32 rounding (1e-4),
ties and borders included, for any batch, landmark count and heatmap size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from facelandmarks_smt.codec import HeatmapDecoder, decode_heatmaps, decode_to_crop, heatmap_to_crop  # noqa: E402
from facelandmarks_smt.config import get_config  # noqa: E402
from facelandmarks_smt.models import SMTNet  # noqa: E402
from facelandmarks_smt.runtime.backends import OrtRunner, TorchRunner  # noqa: E402
from facelandmarks_smt.runtime.export import DECODER_INPUTS, export_decoder_onnx, export_onnx  # noqa: E402
from facelandmarks_smt.runtime.runner import Runner  # noqa: E402

THETA, STRIDE = 0.5, 4


def heatmaps_with_edges(b: int, l: int, s: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random peaky heatmaps, some with their peak on a border or corner (the confidence window
    leaves the map) and one with two equal maxima (the first must win), plus residuals beyond theta."""
    g = torch.Generator().manual_seed(seed)
    hm = torch.randn(b, l, s, s, generator=g) * 0.1
    ys, xs = torch.randint(0, s, (b, l), generator=g), torch.randint(0, s, (b, l), generator=g)
    ys[0, 0], xs[0, 0] = 0, 0
    ys[-1, -1], xs[-1, -1] = s - 1, s - 2
    for i in range(b):
        for j in range(l):
            hm[i, j, ys[i, j], xs[i, j]] = 2.0 + j
    hm[0, 1] = 0.0
    hm[0, 1, 2, 5] = hm[0, 1, 6, 1] = 1.0  # a tie: the first in row-major order wins
    res = (torch.rand(b, l, 2, generator=g) - 0.5) * 3 * THETA
    return hm, res


def run_onnx(graph: bytes, hm: torch.Tensor, res: torch.Tensor):
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(DECODER_INPUTS, (hm.numpy(), res.numpy()))))


def test_decode_to_crop_is_decode_then_crop_pixels():
    hm, res = heatmaps_with_edges(2, 4, 8)
    pts, sc = decode_to_crop(hm, res, THETA, STRIDE)
    c, s = decode_heatmaps(hm, res, THETA)
    assert torch.equal(pts, heatmap_to_crop(c, STRIDE)) and torch.equal(sc, s)
    # hand-computed: the tie in map (0, 1) decodes to its first peak, x = 5, y = 2 in heatmap pixels
    r = res[0, 1].clamp(-THETA, THETA)
    assert torch.allclose(pts[0, 1], (torch.tensor([5.0, 2.0]) + r + 0.5) * STRIDE - 0.5)
    m = HeatmapDecoder(THETA, STRIDE)
    assert all(torch.equal(a, b) for a, b in zip(m(hm, res), (pts, sc)))
    assert HeatmapDecoder.from_config(get_config("tiny")).theta == get_config("tiny").theta


@pytest.mark.parametrize("b,l,s", [(1, 68, 64), (3, 19, 32), (2, 5, 8)])
def test_decoder_graph_matches_torch_decoding(b, l, s):
    graph = export_decoder_onnx(THETA, STRIDE)
    assert graph is not None
    hm, res = heatmaps_with_edges(b, l, s, seed=b + l)
    pts, sc = run_onnx(graph, hm, res)
    ref_pts, ref_sc = decode_to_crop(hm, res, THETA, STRIDE)
    np.testing.assert_array_equal(pts, ref_pts.numpy())
    np.testing.assert_allclose(sc, ref_sc.numpy(), atol=1e-4)
    assert pts.dtype == np.float32 and sc.shape == (b, l)


def test_decoder_graph_on_openvino_matches_torch_decoding():
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(export_decoder_onnx(THETA, STRIDE)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    hm, res = heatmaps_with_edges(2, 68, 64, seed=3)
    hm = hm * 8.0  # sharp maps: a logsumexp without the max shift would be off by units here
    out = compiled.create_infer_request().infer(dict(zip(DECODER_INPUTS, (hm.numpy(), res.numpy()))))
    ref_pts, ref_sc = decode_to_crop(hm, res, THETA, STRIDE)
    np.testing.assert_allclose(out["points"], ref_pts.numpy(), atol=1e-4)  # OpenVINO fuses: 1-ulp differences
    np.testing.assert_allclose(out["scores"], ref_sc.numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SMTNet(get_config("tiny")).eval()


def runners(tiny):
    yield TorchRunner(tiny)
    yield OrtRunner(export_onnx(tiny), threads=1)
    try:
        from facelandmarks_smt.runtime.openvino_backend import OpenVINORunner
        yield OpenVINORunner(export_onnx(tiny), "fp32", threads=1)
    except ImportError:
        pass


def test_every_runner_decodes_as_torch_does(tiny):
    x = torch.randn(2, 3, 256, 256)
    for runner in runners(tiny):
        pts, sc = runner.decoded(x)
        ref_pts, ref_sc = Runner.decoded(runner, x)  # the network call, then the torch decoding
        assert pts.shape == (2, 68, 2) and sc.shape == (2, 68) and pts.dtype == sc.dtype == np.float32
        # the same argmax (another one would move a point by the stride, 4 pixels); OpenVINO's fused
        # arithmetic may differ from torch's in the last bit
        np.testing.assert_allclose(pts, ref_pts, atol=1e-4, err_msg=type(runner).__name__)
        np.testing.assert_allclose(sc, ref_sc, atol=1e-4, err_msg=type(runner).__name__)
    graph_runner = OrtRunner(export_onnx(tiny), threads=1)
    assert graph_runner.decoder_session is not None  # the graph's stored config gave the decoder


def test_a_graph_without_config_decodes_with_a_given_decoder_or_says_what_is_missing(tiny):
    import onnx

    proto = onnx.load_from_string(export_onnx(tiny))
    del proto.metadata_props[:]
    bare = proto.SerializeToString()
    with pytest.raises(ValueError, match="no decoder"):
        OrtRunner(bare, threads=1).decoded(torch.zeros(1, 3, 256, 256))
    pts, _ = OrtRunner(bare, threads=1, decoder=HeatmapDecoder.from_config(tiny.config)).decoded(
        torch.zeros(1, 3, 256, 256))
    assert pts.shape == (1, 68, 2)


@pytest.mark.parametrize("backend", ["onnxruntime"])
def test_decode_in_runtime_ab_arms_give_the_same_landmarks(backend):
    """A quick run of both arms of benchmarks/decode_in_runtime_ab.py: decoding in the runtime and in
    Python must land every point of the same face at the same place (its checksum), and the rows carry
    the fields the table reads."""
    pytest.importorskip("onnxruntime")
    rows = []
    for decode in ("runtime", "python"):
        out = subprocess.run([sys.executable, "decode_in_runtime_ab.py", "--arm", "tiny", backend, decode,
                              "--repeats", "2", "--threads", "1"], cwd=Path(__file__).resolve().parents[1] / "benchmarks", capture_output=True,
                             text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert [r["decode"] for r in rows] == ["runtime", "python"]
    assert rows[0]["check"] == pytest.approx(rows[1]["check"], rel=1e-6)
    assert all(r["ms_b1"] > 0 and r["ms_video_frame"] > 0 and r["ms_whole_image"] > 0 for r in rows)
