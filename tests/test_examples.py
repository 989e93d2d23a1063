"""Every example runs in its quick mode, as a user would run it, so none of them rots."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    res = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"{name} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_detect_landmarks(tmp_path):
    out = tmp_path / "annotated.png"
    res = run_example("detect_landmarks.py", "--quick", "--device", "cpu", "--out", str(out), cwd=tmp_path)
    assert "1 face(s)" in res.stdout
    box_line = next(line for line in res.stdout.splitlines() if "box [" in line)
    numbers = box_line.split("box [")[1].split("]")[0].split(", ")
    assert len(numbers) == 4 and all(len(n.split(".")[1]) == 1 for n in numbers)  # printed rounded
    drawn, photo = cv2.imread(str(out)), cv2.imread(str(EXAMPLES / "astronaut.jpg"))
    assert drawn.shape == photo.shape and (drawn != photo).any()
    assert list(tmp_path.iterdir()) == [out]


def test_detect_landmarks_default_output_is_outside_the_checkout(tmp_path):
    res = run_example("detect_landmarks.py", "--quick", "--device", "cpu", cwd=ROOT)
    written = Path(res.stdout.strip().splitlines()[-1].removeprefix("wrote "))
    try:
        assert written.is_file() and ROOT not in written.resolve().parents
    finally:
        written.unlink(missing_ok=True)


def test_folder_to_csv(tmp_path):
    out = tmp_path / "faces.csv"
    run_example("folder_to_csv.py", "--quick", "--device", "cpu", "--out", str(out), cwd=tmp_path)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows[0]) == 3 + 2 * 68
    assert [r[0] for r in rows[1:]] == ["a.jpg", "b_mirrored.png", "sub/c.jpg"]


def test_video_smoothing(tmp_path):
    out = tmp_path / "clip.mp4"
    res = run_example("video_smoothing.py", "--quick", "--device", "cpu", "--out", str(out), cwd=tmp_path)
    assert "12 frames" in res.stdout and "face detector ran on 1 frames" in res.stdout
    line = next(line for line in res.stdout.splitlines() if "track 0" in line)
    raw = float(line.split("raw ")[1].split(" px")[0])
    smoothed = float(line.split("smoothed ")[1].split(" px")[0])
    assert smoothed < raw
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_retrain_own_annotations(tmp_path):
    out = tmp_path / "run"
    res = run_example("retrain_own_annotations.py", "--quick", "--device", "cpu", "--out", str(out), cwd=tmp_path)
    assert "stopped (max_steps) after 2 steps" in res.stdout
    assert (out / "best.safetensors").is_file() and (out / "log.jsonl").is_file()
