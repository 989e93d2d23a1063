"""Benchmark helpers that compute nothing timed: checked on small hand-made results."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SPEED = {"header": "machine: test, 2 threads, median of 3",
         "rows": [{"config": "small", "backend": "torch", "precision": "fp32", "ms_b1": 90.0, "nme": 3.37},
                  {"config": "tiny", "backend": "onnxruntime", "precision": "int8", "ms_b1": 30.0, "nme": None}],
         "extra": [{"what": "dlib 68-point predictor (given box)", "ms_b1": 2.0}]}
PEER = {"common_set": {"nme": 3.556},
        "speed": [{"threads": 1, "per_face_path_ms_median": 4.1}, {"threads": 2, "per_face_path_ms_median": 2.3}]}


def test_speed_accuracy_points_pair_each_time_with_its_measured_nme():
    m = load("speed_accuracy_plot")
    points, skipped = m.collect_points(SPEED, PEER, dlib_nme=2.76)
    by = {p["label"].split(" (")[0]: (p["ms"], p["nme"]) for p in points}
    assert by["small torch fp32"] == (90.0, 3.37)
    assert by["MediaPipe face mesh + 68-point map"] == (2.3, 3.556)  # the 2-thread run, as the header says
    assert by["dlib predictor"] == (2.0, 2.76)
    assert skipped == ["tiny onnxruntime int8"]  # no NME measured: not plotted
    points, _ = m.collect_points(SPEED, None, dlib_nme=None)
    assert [p["label"] for p in points] == ["small torch fp32"]  # no dlib point without an NME source


def test_speed_accuracy_plot_writes_the_png_and_refuses_results_without_nme(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    m = load("speed_accuracy_plot")
    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps(SPEED))
    out = tmp_path / "plot.png"
    assert m.main(["--speed", str(speed), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and "small torch fp32" in capsys.readouterr().out
    bare = dict(SPEED, rows=[dict(SPEED["rows"][0], nme=None)])
    speed.write_text(json.dumps(bare))
    with pytest.raises(SystemExit, match="has both a time and an NME"):
        m.main(["--speed", str(speed), "--out", str(out)])
