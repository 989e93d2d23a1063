"""examples/ray_folder.py: the CPU plan, the per-batch class, and an end-to-end run on a local Ray.

The end-to-end test runs by default (Ray is in the ``test`` extra): a local Ray instance with as
many CPUs as the machine has cores (at most 4) and as many workers as CPUs, which is the set-up
that used to deadlock (the actors held every CPU and the read task waited forever). It runs the
example in a subprocess of its own session with a hard time limit: on a hang the whole process
group (driver, raylet, workers) is killed and the test fails with the output so far.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ray_folder.py"
SAMPLE = ROOT / "examples" / "astronaut.jpg"
#: Hard limit of the end-to-end run; it takes about 25 s on 2 busy cores.
TIME_LIMIT_S = 120


def load_example():
    spec = importlib.util.spec_from_file_location("ray_folder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_cpus_leaves_room_for_reading_and_writing():
    m = load_example()
    for cores in (1, 2, 3, 4, 8, 64):
        for workers in range(1, cores + 1):
            cpus = m.plan_cpus(cores, workers)
            assert 0 < cpus <= 1
            assert workers * cpus + 2 * m.IO_CPUS <= cores + 1e-9, (cores, workers, cpus)
    assert m.plan_cpus(2, 2) == 0.75 and m.plan_cpus(1, 1) == 0.5
    assert m.plan_cpus(8, 2) == 1.0                      # room to spare: 1 CPU each, as before
    assert m.plan_cpus(64, 16, cpus_per_worker=3) == 3   # an explicit choice that fits is kept
    assert m.plan_cpus(2, 2, cpus_per_worker=1) == 0.75  # one that does not is lowered
    with pytest.raises(ValueError):
        m.plan_cpus(0.5, 1)


def test_ray_predictor_class_without_ray(tmp_path):
    """The callable class that Ray runs per batch, called directly: one row per face, a row per
    unreadable file, Arrow types that Parquet stores (also checked when Ray cannot start here)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    module = load_example()
    folder = module.quick_folder(tmp_path / "photos")
    paths = sorted(folder.iterdir())
    batch = {"bytes": np.array([p.read_bytes() for p in paths], dtype=object),
             "path": np.array([str(p) for p in paths])}
    table = module.LandmarkPredictor(device="cpu")(batch)
    assert isinstance(table, pa.Table) and table.num_rows == 3
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    assert rows["broken.jpg"]["face"] == -1 and "cannot identify" in rows["broken.jpg"]["error"].lower()
    assert rows["a.jpg"]["face"] == 0 and len(rows["a.jpg"]["landmarks"]) == 136
    assert table.schema.field("landmarks").type == pa.list_(pa.float32())
    pq.write_table(table, tmp_path / "x.parquet")
    assert pq.read_table(tmp_path / "x.parquet").num_rows == 3


def small_folder(root: Path) -> dict[str, int]:
    """Six small images made from the sample photo, one without a face, one corrupt file; returns
    the expected number of faces per file name (-1: no face row)."""
    root.mkdir(parents=True)
    face = cv2.imread(str(SAMPLE))[0:256, 96:352]
    cv2.imwrite(str(root / "a.jpg"), face)
    cv2.imwrite(str(root / "b.png"), face[:, ::-1])
    cv2.imwrite(str(root / "c.jpg"), cv2.resize(face, (192, 192), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(root / "d.jpg"), cv2.resize(face, (320, 320), interpolation=cv2.INTER_LINEAR))
    cv2.imwrite(str(root / "e.bmp"), cv2.copyMakeBorder(face, 32, 32, 64, 64, cv2.BORDER_CONSTANT, value=(90, 90, 90)))
    cv2.imwrite(str(root / "blank.png"), np.full((200, 200, 3), 128, np.uint8))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("not an image: skipped by extension")
    return {"a.jpg": 1, "b.png": 1, "c.jpg": 1, "d.jpg": 1, "e.bmp": 1, "blank.png": -1, "broken.jpg": -1}


def run_with_time_limit(cmd: list[str], cwd: Path, env: dict, limit: float) -> subprocess.CompletedProcess:
    """Run ``cmd``; past ``limit`` seconds kill its whole process group and fail the test."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"ray_folder.py made no result within {limit} s (hung?); its output:\n{out[-6000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def test_ray_folder_end_to_end_workers_equal_cores(tmp_path):
    pytest.importorskip("ray.data")
    pq = pytest.importorskip("pyarrow.parquet")
    expected = small_folder(tmp_path / "photos")
    cores = max(1, min(os.cpu_count() or 1, 4))
    out = tmp_path / "parquet"
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, str(EXAMPLE), str(tmp_path / "photos"), "--out", str(out), "--device", "cpu",
           "--workers", str(cores), "--num-cpus", str(cores), "--batch-size", "2", "--object-store-mb", "100"]
    res = run_with_time_limit(cmd, tmp_path, env, TIME_LIMIT_S)
    assert res.returncode == 0, res.stdout[-6000:]
    assert f"{cores} worker(s) x " in res.stdout

    rows = pq.read_table(out).to_pylist()
    by_file: dict[str, list] = {}
    for r in rows:
        by_file.setdefault(Path(r["path"]).name, []).append(r)
    assert sorted(by_file) == sorted(expected)
    for name, faces in expected.items():
        got = by_file[name]
        if faces < 0:
            assert len(got) == 1 and got[0]["face"] == -1 and got[0]["landmarks"] is None
            assert bool(got[0]["error"]) == (name == "broken.jpg")
        else:
            assert [r["face"] for r in got] == list(range(faces)) and got[0]["error"] is None
            assert len(got[0]["landmarks"]) == 2 * 68 and len(got[0]["box"]) == 4
    # the mirrored picture's face sits mirrored: its landmarks' mean x is mirrored too
    mean_x = {n: sum(by_file[n][0]["landmarks"][0::2]) / 68 for n in ("a.jpg", "b.png")}
    assert abs(mean_x["a.jpg"] + mean_x["b.png"] - 255) < 6
    # the padded copy's landmarks are the original's shifted by the padding
    a, e = (np.array(by_file[n][0]["landmarks"]).reshape(68, 2) for n in ("a.jpg", "e.bmp"))
    assert np.abs((e - a).mean(axis=0) - [64, 32]).max() < 4
