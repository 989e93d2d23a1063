"""The first int8 build streams its calibration data and keys its cache on every calibration
setting (issue 16: the build took 51 s and peaked at 4 GB; onnxruntime's calibration session
at batch 16 held most of it). Memory and time themselves are measured, not tested:
benchmarks/int8_build_profile.py, docs/benchmarks.md."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from facelandmarks_smt.models import SMTNet  # noqa: E402
from facelandmarks_smt.runtime import graphs, quantize  # noqa: E402
from facelandmarks_smt.runtime.export import export_onnx  # noqa: E402
from test_trainer import micro_model  # noqa: E402


def _crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


class _Counted:
    """An iterable of crops that counts how many have been drawn from it."""

    def __init__(self, crops) -> None:
        self.crops, self.drawn = crops, 0

    def __iter__(self):
        for c in self.crops:
            self.drawn += 1
            yield c


def test_crop_batches_stream_at_most_one_batch():
    cfg = micro_model()
    source = _Counted(_crops(7, cfg.input_size))
    reader = quantize.CropBatches(source, cfg, batch=3)
    assert source.drawn == 0  # nothing is read (or normalised) up front
    sizes = []
    while (x := reader.get_next()) is not None:
        batch = x["input"]
        assert batch.dtype == np.float32 and batch.shape[1:] == (3, cfg.input_size, cfg.input_size)
        sizes.append(len(batch))
        assert source.drawn == sum(sizes)  # drawn only as handed out: never more than one batch held
    assert sizes == [3, 3, 1] and reader.crops == 7 and reader.batches == 3
    with pytest.raises(ValueError, match="uint8"):
        quantize.CropBatches([np.zeros((cfg.input_size, cfg.input_size, 3), np.float32)], cfg).get_next()


def test_int8_build_feeds_the_calibration_session_one_small_batch_at_a_time(monkeypatch, tmp_path):
    cfg = micro_model()
    seen = []

    class Spy(quantize.CropBatches):
        def get_next(self):
            x = super().get_next()
            if x is not None:
                seen.append(len(x["input"]))
            return x

    monkeypatch.setattr(quantize, "CropBatches", Spy)
    fp32 = export_onnx(SMTNet(cfg).eval(), tmp_path / "fp32.onnx")
    source = _Counted(_crops(5, cfg.input_size))
    out = quantize.quantize_int8(fp32, tmp_path / "int8.onnx", source, threads=1)
    assert out.is_file() and source.drawn == 5
    assert seen and max(seen) <= quantize.QUANT_SETTINGS["calibration_batch"] <= 4 and sum(seen) == 5


def test_own_calibration_session_gives_onnxruntimes_ranges(tmp_path):
    """The optimised calibration session collects the same MinMax ranges as quantize_static's own,
    unoptimised one (the Reduce nodes read every calibrated tensor, so no fusion changes them)."""
    from onnxruntime.quantization.calibrate import create_calibrator

    cfg = micro_model()
    fp32 = export_onnx(SMTNet(cfg).eval(), tmp_path / "fp32.onnx")
    prepped = quantize.pre_process(fp32, tmp_path / "prepped.onnx")
    crops = _crops(4, cfg.input_size, seed=3)
    ours = quantize.calibrate_ranges(prepped, quantize.CropBatches(crops, cfg, 1), tmp_path / "aug1.onnx", threads=1)
    ref = create_calibrator(prepped, quantize.QUANT_SETTINGS["ops"], augmented_model_path=str(tmp_path / "aug2.onnx"))
    ref.collect_data(quantize.CropBatches(crops, cfg, 4))
    theirs = ref.compute_data()
    assert set(ours.data) == set(theirs.data) and len(ours.data) > 10
    for name, t in theirs.data.items():
        np.testing.assert_allclose(np.ravel(ours.data[name].range_value), np.ravel(t.range_value), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_int8_cache_key_covers_the_calibration_settings(monkeypatch):
    crops = _crops(3, 128)
    recipe, _ = graphs.int8_recipe(crops)
    assert recipe["calibration_batch"] == quantize.QUANT_SETTINGS["calibration_batch"]
    assert recipe["num_crops"] == 3
    assert "calibration_session" in recipe
    key = quantize.recipe_key(recipe)
    assert quantize.recipe_key(graphs.int8_recipe(crops.copy())[0]) == key  # same data, same settings
    monkeypatch.setitem(quantize.QUANT_SETTINGS, "calibration_batch", quantize.QUANT_SETTINGS["calibration_batch"] + 1)
    assert quantize.recipe_key(graphs.int8_recipe(crops)[0]) != key
    monkeypatch.undo()
    monkeypatch.setattr(quantize, "CALIBRATION_SESSION", "another session")
    monkeypatch.setattr(quantize, "_own_calibration_supported", lambda: True)
    other = quantize.recipe_key(graphs.int8_recipe(crops)[0])
    monkeypatch.setattr(quantize, "_own_calibration_supported", lambda: False)  # an older onnxruntime calibrates
    assert len({key, other, quantize.recipe_key(graphs.int8_recipe(crops)[0])}) == 3


def test_int8_cache_key_covers_the_number_of_calibration_faces(monkeypatch, tmp_path):
    from conftest import synthetic_faces
    from test_trainer import _write_pts_folder

    folder = tmp_path / "calib"
    _write_pts_folder(folder, synthetic_faces(6, seed=5))
    recipe, _ = graphs.int8_recipe([folder])
    assert recipe["num_crops"] == quantize.DEFAULT_NUM_CROPS and recipe["calibration_batch"] >= 1
    monkeypatch.setattr(graphs, "DEFAULT_NUM_CROPS", quantize.DEFAULT_NUM_CROPS + 1)
    assert quantize.recipe_key(graphs.int8_recipe([folder])[0]) != quantize.recipe_key(recipe)


def test_reduce_range_follows_the_cpu_and_is_part_of_the_cache_key(monkeypatch):
    """7-bit weights where x86 int8 dot products saturate (no VNNI), 8-bit elsewhere; the choice is
    in the recipe, so a graph made for one kind of CPU is never loaded for the other."""
    from facelandmarks_smt.runtime import device

    monkeypatch.setattr(quantize, "cpu_int8_saturates", lambda: True)
    assert quantize.reduce_range() is True and quantize.quant_settings()["reduce_range"] is True
    saturating = quantize.recipe_key({"num_crops": 1, **quantize.quant_settings()})
    monkeypatch.setattr(quantize, "cpu_int8_saturates", lambda: False)
    assert quantize.quant_settings()["reduce_range"] is False
    assert quantize.recipe_key({"num_crops": 1, **quantize.quant_settings()}) != saturating
    monkeypatch.setitem(quantize.QUANT_SETTINGS, "reduce_range", True)  # an explicit setting wins
    assert quantize.reduce_range() is True
    # the CPU check itself reads the flags: VNNI (or a non-x86 machine) means no saturation
    device.cpu_int8_saturates.cache_clear()
    try:
        import platform

        monkeypatch.setattr(platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(device.Path, "read_text", lambda self: "flags : fpu avx2 avx512_vnni\n")
        assert device.cpu_int8_saturates() is False
        device.cpu_int8_saturates.cache_clear()
        monkeypatch.setattr(device.Path, "read_text", lambda self: "flags : fpu avx avx2 fma\n")
        assert device.cpu_int8_saturates() is True
        device.cpu_int8_saturates.cache_clear()
        monkeypatch.setattr(platform, "machine", lambda: "aarch64")
        assert device.cpu_int8_saturates() is False
    finally:
        device.cpu_int8_saturates.cache_clear()


def test_shipped_int8_ranges_rebuild_the_calibrated_graph_without_data(monkeypatch, tmp_path):
    """Ranges written beside a weights file (`graphs.write_int8_ranges`, `export --int8-ranges`) let
    int8 build without calibration data: the same graph as calibrating on those folders; ranges that
    do not fit the graph, or a damaged file, are refused naming the file."""
    import json

    import onnx

    from conftest import synthetic_faces
    from facelandmarks_smt import Detector, cli
    from facelandmarks_smt.weights_io import save_weights, sha256_file
    from test_trainer import _write_pts_folder

    folder = tmp_path / "calib"
    _write_pts_folder(folder, synthetic_faces(6, seed=5))
    cfg = micro_model()
    torch_model = SMTNet(cfg).eval()
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    weights = weights_dir / "micro.safetensors"
    save_weights(torch_model, cfg, weights)
    rc = cli.main(["export", "--weights", str(weights), "--out", str(weights_dir / "micro.int8-ranges.json"),
                   "--int8-ranges", "--calibration", str(folder)])
    assert rc == 0
    ranges_file = weights_dir / "micro.int8-ranges.json"
    data = json.loads(ranges_file.read_text())
    assert data["weights_sha256"] == sha256_file(weights) and data["recipe"]["folders"] == ["calib"]
    assert all(lo <= hi for lo, hi in data["ranges"].values()) and len(data["ranges"]) > 10

    monkeypatch.setenv("FACELANDMARKS_SMT_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path / "cache_shipped"))
    assert graphs.shipped_int8_ranges(sha256_file(weights)) == ranges_file
    shipped = Detector(weights, device="cpu", backend="onnxruntime", precision="int8", threads=1)
    from_ranges = list((tmp_path / "cache_shipped").glob("*-int8-*.onnx"))
    assert len(from_ranges) == 1
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path / "cache_calibrated"))
    calibrated = Detector(weights, device="cpu", backend="onnxruntime", precision="int8", threads=1,
                          calibration=[folder])
    from_data = list((tmp_path / "cache_calibrated").glob("*-int8-*.onnx"))
    a, b = (onnx.load(str(p[0])) for p in (from_ranges, from_data))
    ia = {i.name: onnx.numpy_helper.to_array(i) for i in a.graph.initializer}
    ib = {i.name: onnx.numpy_helper.to_array(i) for i in b.graph.initializer}
    assert set(ia) == set(ib) and all(np.array_equal(ia[k], ib[k]) for k in ia)
    crops = _crops(2, cfg.input_size, seed=9)
    np.testing.assert_array_equal(shipped.predict_crops(crops), calibrated.predict_crops(crops))

    # ranges that lack a tensor of this graph (another export) and a damaged file: clear errors
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path / "cache_bad"))
    dropped = dict(data, ranges={k: v for i, (k, v) in enumerate(sorted(data["ranges"].items())) if i})
    ranges_file.write_text(json.dumps(dropped))
    with pytest.raises(ValueError, match=r"micro\.int8-ranges\.json: the int8 ranges do not fit this graph"):
        Detector(weights, device="cpu", backend="onnxruntime", precision="int8", threads=1)
    ranges_file.write_text(json.dumps(dict(data, format=99)))
    with pytest.raises(ValueError, match="not an int8 ranges file"):
        Detector(weights, device="cpu", backend="onnxruntime", precision="int8", threads=1)
    with pytest.raises(ValueError, match="needs --calibration"):
        cli.main(["export", "--weights", str(weights), "--out", str(tmp_path / "r.json"), "--int8-ranges"])


def test_fp32_nodes_are_the_heads_and_the_last_feature_block_but_its_first_conv(tmp_path):
    """The int8 recipe's float part, by node name on a real export (two stacks)."""
    import onnx

    cfg = micro_model()
    assert cfg.num_stacks == 2
    path = export_onnx(SMTNet(cfg).eval(), tmp_path / "m.onnx")
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm")]
    keep = set(quantize.fp32_nodes(path)) & set(convs)
    assert {n for n in convs if "/heatmap_heads." in n or "/coord_heads." in n} <= keep
    assert "/model/features.1/features.1.0/conv2/conv2.2/Conv" in keep
    assert "/model/features.1/features.1.1/Conv" in keep
    assert "/model/features.1/features.1.0/conv1/conv1.2/Conv" not in keep  # quantised: cost nothing measurable
    assert not any("/features.0/" in n or "/hourglasses." in n or "/stem/" in n for n in keep)


def test_float_conv_outputs_is_the_graph_built_without_output_quantisation(tmp_path):
    """`quantize.float_conv_outputs` (what OpenVINO runs) takes the re-quantisation of each quantised op's
    output out of the cached int8 graph: the same outputs as building that graph from the same ranges with
    ``conv_outputs=False``; inputs and weights stay quantised; a quantised op that reads another's output
    directly keeps its quantised input."""
    import onnx
    import onnxruntime as ort

    cfg = micro_model()
    fp32 = export_onnx(SMTNet(cfg).eval(), tmp_path / "m.onnx")
    ranges = quantize.collect_ranges(fp32, _crops(4, cfg.input_size), threads=1)
    q = quantize.quantize_from_ranges(fp32, tmp_path / "q.onnx", ranges, {})
    qf = quantize.quantize_from_ranges(fp32, tmp_path / "qf.onnx", ranges, {}, conv_outputs=False)
    derived = quantize.float_conv_outputs(q)
    x = np.random.default_rng(3).standard_normal((2, 3, cfg.input_size, cfg.input_size)).astype(np.float32)
    run = lambda g: ort.InferenceSession(g, providers=["CPUExecutionProvider"]).run(None, {"input": x})  # noqa: E731
    for a, b in zip(run(derived), run(str(qf))):
        np.testing.assert_array_equal(a, b)
    assert np.abs(run(derived)[0] - run(str(q))[0]).max() > 0  # heatmaps: the re-quantisation really is gone
    proto = onnx.load_model_from_string(derived)
    producer = {o: n for n in proto.graph.node for o in n.output}
    count = lambda p: sum(n.op_type == "QuantizeLinear" for n in p.graph.node)  # noqa: E731
    assert count(proto) == count(onnx.load(str(qf))) < count(onnx.load(str(q)))
    readers = {}
    for n in proto.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    for n in proto.graph.node:  # a quantised op's output is re-quantised only for another quantised op
        if n.op_type == "QuantizeLinear" and n.input[0] in producer \
                and producer[n.input[0]].op_type in ("Conv", "Gemm", "MatMul"):
            final = {r.op_type for dq in readers[n.output[0]] for r in readers.get(dq.output[0], [])}
            assert final <= {"Conv", "Gemm", "MatMul"}, final
    assert {p.key for p in proto.metadata_props} == {p.key for p in onnx.load(str(q)).metadata_props}
    used = {i for n in proto.graph.node for i in n.input}
    assert all(t.name in used for t in proto.graph.initializer)  # no dead scales left behind
