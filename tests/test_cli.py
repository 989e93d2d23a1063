"""The facelandmarks-smt command: images, folders and a video in; JSON, CSV, annotated files out."""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelandmarks_smt import cli

ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"


def face_image() -> np.ndarray:
    """BGR 256x256 crop of the sample photo around the face (small, so the tests stay fast)."""
    return cv2.imread(str(ASTRONAUT))[0:256, 96:352]


def moving_clip(path: Path, n: int = 8, fps: float = 25.0) -> list[np.ndarray]:
    """Write an MP4 of the face turning by up to 12 degrees and sliding 16 px; return the affines."""
    image = face_image()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*cli.VIDEO_FOURCC), fps, (256, 256))
    assert writer.isOpened()
    mats = []
    for t in range(n):
        m = cv2.getRotationMatrix2D((128.0, 127.0), 12.0 * t / (n - 1), 1.0)
        m[:, 2] += [16.0 * t / (n - 1), 8.0 * t / (n - 1)]
        writer.write(cv2.warpAffine(image, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
        mats.append(m)
    writer.release()
    return mats


def read_csv(path: Path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_folder_with_bad_files_and_missing_path(tmp_path, capsys):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), face_image())
    cv2.imwrite(str(src / "sub" / "b.jpg"), face_image())
    (src / "sub" / "broken.jpg").write_bytes(b"not a jpeg")
    (src / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "out"
    rc = cli.main(["detect", str(src), str(tmp_path / "missing.png"), "--out", str(out), "--no-progress",
                   "--device", "cpu"])
    assert rc == 1  # two inputs failed, the others were processed
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 2 and "broken.jpg" in err[0] and "missing.png" in err[1]

    header, rows = read_csv(out / "results.csv")
    assert header[:6] == ["file", "frame", "face", "score", "x0", "y0"] and header[-1] == "y67"
    assert len(header) == 4 + 2 * 68
    assert [Path(r[0]).name for r in rows] == ["a.png", "b.jpg"]  # sorted, recursive, one face each
    pts = np.array([r[4:] for r in rows], float).reshape(2, 68, 2)
    assert np.all((pts > 20) & (pts < 236))  # on the face, not at the crop border
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["num_landmarks"] == 68
    files = results["files"]
    assert [Path(f["file"]).name for f in files] == ["a.png", "b.jpg", "broken.jpg", "missing.png"]
    assert "error" in files[2] and "error" in files[3]
    face = files[0]["faces"][0]
    assert len(face["landmarks"]) == 68 and len(face["landmark_scores"]) == 68
    assert face["box"] == [round(v, 2) for v in face["box"]]
    assert np.allclose(np.array(face["landmarks"]), pts[0], atol=0.01)
    for name in ("a.png", "sub/b.jpg"):
        img = cv2.imread(str(out / "annotated" / "photos" / name))
        assert img is not None and img.shape == (256, 256, 3)
        assert np.abs(img.astype(int) - face_image()).sum() > 0  # something was drawn


def test_all_good_exits_zero_and_scheme_changes_the_columns(tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), face_image())
    out = tmp_path / "out"
    rc = cli.main(["detect", str(tmp_path / "face.png"), "--out", str(out), "--no-progress", "--no-annotate",
                   "--scheme", "aflw-19", "--threads", "1", "--device", "cpu"])
    assert rc == 0
    header, rows = read_csv(out / "results.csv")
    assert len(header) == 4 + 2 * 19 and header[-1] == "y18" and len(rows) == 1
    assert not (out / "annotated").exists()
    assert json.loads((out / "results.json").read_text())["model"]["scheme"] == "aflw-19"


def test_min_face_score_drops_faces(tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), face_image())
    out = tmp_path / "out"
    rc = cli.main(["detect", str(tmp_path / "face.png"), "--out", str(out), "--no-progress", "--no-annotate",
                   "--min-face-score", "1e9", "--device", "cpu"])
    assert rc == 0  # the file worked; it just has no face good enough
    assert read_csv(out / "results.csv")[1] == []


def test_video_is_tracked_smoothed_and_written(tmp_path):
    clip = tmp_path / "clip.mp4"
    mats = moving_clip(clip, n=8)
    out = tmp_path / "out"
    rc = cli.main(["detect", str(clip), "--out", str(out), "--no-progress", "--device", "cpu",
                   "--redetect-every", "5"])
    assert rc == 0
    (video,) = json.loads((out / "results.json").read_text())["files"]
    assert video["type"] == "video" and video["frames"] == 8 and video["fps"] == pytest.approx(25.0)
    assert [f["frame"] for f in video["faces"]] == list(range(8))  # one face in every frame
    assert [f["detected"] for f in video["faces"]] == [True] + [False] * 4 + [True] + [False] * 2
    assert video["detector_runs"] == 2
    assert len({f["face"] for f in video["faces"]}) == 1  # one track all along
    _, rows = read_csv(out / "results.csv")
    assert [int(r[1]) for r in rows] == list(range(8))
    # the landmarks follow the known motion of the first frame's landmarks
    pts = np.array([f["landmarks"] for f in video["faces"]])
    for t in range(1, 8):
        expected = pts[0] @ mats[t][:, :2].T + mats[t][:, 2]
        assert np.linalg.norm(pts[t] - expected, axis=1).mean() < 4.0, t
    cap = cv2.VideoCapture(str(out / "annotated" / "clip.mp4"))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (256, 256, 3)
        n += 1
    assert n == 8


def test_bad_arguments_exit_2(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "face.png"), face_image())
    args = ["detect", str(tmp_path / "face.png"), "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert cli.main(args + ["--scheme", "no-such-scheme"]) == 2
    assert "unknown landmark scheme" in capsys.readouterr().err
    assert cli.main(args + ["--smooth-min-cutoff", "0"]) == 2
    assert cli.main(args + ["--redetect-every", "0"]) == 2
    assert cli.main(args + ["--weights", str(tmp_path / "nope.safetensors")]) == 2
    assert cli.main(args + ["--detector-max-side", "16"]) == 2
    assert "max_side" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["detect", "--out", "x"])  # no PATH
    assert e.value.code == 2


def test_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["detect", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--device", "cpu",
                     "--no-progress"]) == 1
    assert "no image or video files in folder" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "results.json").read_text())["files"][0]["error"]


def test_supported_kwargs_passes_only_what_a_function_takes():
    def f(image, boxes=None, min_face_score=0.5):
        pass

    def g(image, **kwargs):
        pass

    assert cli.supported_kwargs(f, {"min_face_score": 0.7, "scheme": "19", "x": None}) == \
        ({"min_face_score": 0.7}, {"scheme": "19"})
    assert cli.supported_kwargs(g, {"scheme": "19"}) == ({"scheme": "19"}, {})


def _help_entries(parser: argparse.ArgumentParser):
    """(option, rendered help) for every option of a parser and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _help_entries(sub)
            continue
        formatter = parser._get_formatter()
        yield action.dest, formatter._format_action(action)


@pytest.mark.parametrize("which", ["cli", "training"])
def test_help_texts_say_each_default_once(which):
    if which == "cli":
        parser = cli.build_parser()
    else:
        from facelandmarks_smt.training.cli import build_parser

        parser = build_parser()
    entries = list(_help_entries(parser))
    assert len(entries) > 10
    for dest, text in entries:
        text = " ".join(text.split())
        assert len(re.findall(r"default", text, flags=re.I)) <= 1, text
        assert "(default: None)" not in text and "(default: False)" not in text, text
    shown = dict(entries)
    assert "(default: cpu" not in shown["device"] and "default: auto" in " ".join(shown["device"].split())


def test_python_dash_m_help():
    res = subprocess.run([sys.executable, "-m", "facelandmarks_smt", "detect", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--min-face-score" in res.stdout and "One Euro" in res.stdout


def test_detector_max_side_still_finds_the_face(tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), face_image())
    out = tmp_path / "out"
    assert cli.main(["detect", str(tmp_path / "face.png"), "--out", str(out), "--device", "cpu",
                     "--detector-max-side", "128", "--no-annotate", "--no-progress"]) == 0
    result = json.loads((out / "results.json").read_text())
    (face,) = result["files"][0]["faces"]
    pts = np.array(face["landmarks"])
    assert np.all((pts > 20) & (pts < 236))  # on the face in the full-size image's pixels


def test_graph_backend_runs_with_one_torch_thread_and_gives_the_count_back(tmp_path, monkeypatch):
    """With onnxruntime (or openvino) the command gives torch one thread while it runs (torch only
    normalises and decodes around the runtime's call, and its spinning workers would slow that call),
    and puts the caller's count back when it returns; with torch the count is left alone."""
    pytest.importorskip("onnxruntime")
    import torch

    from facelandmarks_smt.cli import detect as detect_cli
    from facelandmarks_smt.detector import Detector

    seen = []
    original = Detector.detect

    def recording(self, *args, **kwargs):
        seen.append((self.backend, torch.get_num_threads()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Detector, "detect", recording)
    path = tmp_path / "face.jpg"
    cv2.imwrite(str(path), face_image())
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for backend in ("onnxruntime", "torch"):
            rc = cli.main(["detect", str(path), "--out", str(tmp_path / backend), "--no-progress", "--no-annotate",
                           "--device", "cpu", "--weights", "smtnet-300w-tiny", "--backend", backend,
                           "--precision", "fp32"])
            assert rc == 0 and torch.get_num_threads() == 2
        assert seen == [("onnxruntime", 1), ("torch", 2)]
    finally:
        torch.set_num_threads(before)
    detect_cli.quiet_torch_around_graph_runtime("torch")
    assert torch.get_num_threads() == before
