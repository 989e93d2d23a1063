"""The fixes of the layered redesign (issue 15), each checked against the behaviour it replaces:
int8 cache identity, no silent exporter switch, schemes, process-wide state, callers' objects,
writers' temporary files, roll correction on tracked frames, and what a new user hit."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from facelandmarks_smt import Detector, FaceInputWarning
from facelandmarks_smt.geometry import inside_fraction, landmark_box, upright_landmark_box
from facelandmarks_smt.images import check_boxes, load_image
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.result import Face
from facelandmarks_smt.weights_io import load_weights, save_weights
from test_trainer import _write_pts_folder, micro_model, micro_train_config

REPO = Path(__file__).resolve().parent.parent


# --- int8 graph cache ---------------------------------------------------------------------------
def _fake_graph(path: Path, meta: dict) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def test_int8_without_calibration_never_takes_another_models_or_exports_graph(monkeypatch, tmp_path):
    from facelandmarks_smt.runtime import graphs

    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    model = SMTNet(micro_model())
    sha = "a" * 64
    stem = graphs.int8_stem(model, sha)
    assert stem.endswith(f"-v{graphs.EXPORT_VERSION}")  # the export version is part of the name
    # a graph under this name whose metadata names other weights (same 32-character prefix) is refused
    _fake_graph(tmp_path / f"{stem}-000000000000.onnx", {graphs.WEIGHTS_SHA_KEY: "a" * 32 + "b" * 32,
                                                          graphs.EXPORT_VERSION_KEY: str(graphs.EXPORT_VERSION)})
    with pytest.raises(ValueError, match="calibration"):
        graphs.int8_graph(model, sha, None)
    # the right weights but another export version: refused too
    _fake_graph(tmp_path / f"{stem}-111111111111.onnx", {graphs.WEIGHTS_SHA_KEY: sha, graphs.EXPORT_VERSION_KEY: "0"})
    with pytest.raises(ValueError, match="calibration"):
        graphs.int8_graph(model, sha, None)
    good = _fake_graph(tmp_path / f"{stem}-222222222222.onnx",
                       {graphs.WEIGHTS_SHA_KEY: sha, graphs.EXPORT_VERSION_KEY: str(graphs.EXPORT_VERSION)})
    assert graphs.int8_graph(model, sha, None) == good
    # a graph of an older export is not even looked at after the version is bumped
    monkeypatch.setattr(graphs, "EXPORT_VERSION", graphs.EXPORT_VERSION + 1)
    assert graphs.find_cached_int8(model, sha) is None
    monkeypatch.undo()
    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path))
    # two calibrations of the same weights: ambiguous, never "the newest by mtime"
    _fake_graph(tmp_path / f"{stem}-333333333333.onnx",
                {graphs.WEIGHTS_SHA_KEY: sha, graphs.EXPORT_VERSION_KEY: str(graphs.EXPORT_VERSION)})
    with pytest.raises(ValueError, match="pass calibration"):
        graphs.int8_graph(model, sha, None)


def test_int8_cache_key_follows_the_calibration_folders_content(tmp_path):
    from facelandmarks_smt.datasets import read_pts, write_pts
    from facelandmarks_smt.runtime.graphs import int8_recipe
    from facelandmarks_smt.runtime.quantize import recipe_key

    folder = tmp_path / "calib"
    _write_pts_folder(folder, synthetic_faces(4, seed=11))
    key = recipe_key(int8_recipe([folder])[0])
    assert key == recipe_key(int8_recipe(str(folder))[0])  # same folder, same key
    pts_file = sorted(folder.glob("*.pts"))[0]
    pts = read_pts(pts_file)
    write_pts(pts_file, pts + 1.0)  # re-annotated in place: same folder name, other content
    moved = recipe_key(int8_recipe([folder])[0])
    assert moved != key
    for img in folder.glob("*.png"):  # every image replaced, names and annotations unchanged
        cv2.imwrite(str(img), cv2.flip(cv2.imread(str(img)), 1))
    assert recipe_key(int8_recipe([folder])[0]) != moved


# --- export -------------------------------------------------------------------------------------
def test_exporter_switch_is_announced_not_silent(monkeypatch):
    from facelandmarks_smt.runtime.export import export_onnx

    calls = []

    def fake_export(*args, dynamo=False, **kwargs):
        calls.append(dynamo)
        if not dynamo:
            raise TypeError("the TorchScript exporter is gone")
        raise RuntimeError("sentinel: the dynamo exporter ran")

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    with pytest.warns(RuntimeWarning, match="torch.export-based exporter"), pytest.raises(RuntimeError, match="sentinel"):
        export_onnx(SMTNet(micro_model()))
    assert calls == [False, True]


def test_exported_onnx_files_get_ordinary_permissions(tmp_path):
    from facelandmarks_smt.runtime.export import export_onnx

    umask = os.umask(0o022)
    os.umask(umask)
    out = export_onnx(SMTNet(micro_model()), tmp_path / "m.onnx")
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    assert not [p for p in tmp_path.iterdir() if p.name != "m.onnx"]  # no temporary file left


# --- weights files ------------------------------------------------------------------------------
def _data_offset(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def test_a_flipped_bit_in_the_weights_is_caught_by_the_stored_checksum(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.safetensors"
    save_weights(SMTNet(micro_model()), micro_model(), path)
    raw = bytearray(path.read_bytes())
    raw[_data_offset(path) + 4096] ^= 0x01  # the lowest bit of a float32: still finite, still the same shape
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        load_weights(path)


def test_weights_files_without_a_checksum_still_load(tmp_path):
    from safetensors.torch import load_file, safe_open
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_weights(SMTNet(micro_model()), micro_model(), path)
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    assert "tensors_sha256" in meta
    del meta["tensors_sha256"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata=meta)
    config, state, _ = load_weights(old)
    assert config == micro_model() and state


def test_writers_of_one_path_use_their_own_temporary_files(monkeypatch, tmp_path):
    from facelandmarks_smt import fileio

    sources = []
    real_replace = os.replace

    def spy(src, dst):
        sources.append(str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", spy)
    path = tmp_path / "w.safetensors"
    models = [SMTNet(micro_model()) for _ in range(2)]
    errors = []

    def write(m):
        try:
            for _ in range(3):
                save_weights(m, micro_model(), path)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(sources) == 6 and len(set(sources)) == 6  # never the fixed "w.safetensors.tmp" of before
    assert str(path) + ".tmp" not in sources
    load_weights(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


# --- process-wide state and callers' objects ----------------------------------------------------
def test_detector_threads_are_scoped_to_its_calls():
    from facelandmarks_smt.runtime.backends import TorchRunner

    before = torch.get_num_threads()
    Detector.from_config("tiny", device="cpu", threads=before + 2)
    assert torch.get_num_threads() == before  # constructing it changed nothing process-wide

    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return [(torch.zeros(len(x), 1, 4, 4), torch.zeros(len(x), 1, 2))]

    TorchRunner(Probe(), threads=before + 2)(torch.zeros(1, 3, 16, 16))
    assert seen == [before + 2] and torch.get_num_threads() == before


def test_detector_leaves_a_callers_model_alone():
    model = SMTNet(micro_model())
    model.train()
    det = Detector(model, device="cpu")
    assert model.training and det.model is not model and not det.model.training
    assert next(model.parameters()).device.type == "cpu"


def test_trainer_keeps_the_callers_rng_and_opencv_threads(monkeypatch, tmp_path):
    from facelandmarks_smt.training.trainer import Trainer

    faces = synthetic_faces(8, seed=2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    trainer = Trainer(micro_train_config(epochs=3, stage_epochs=(3,)), faces[:6], faces[6:], tmp_path / "run",
                      device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the seeded init did not reseed the global RNG

    caller = cv2.getNumThreads()
    mine = 1 if caller != 1 else 2
    cv2.setNumThreads(mine)
    try:
        calls = []
        real = cv2.setNumThreads
        monkeypatch.setattr(cv2, "setNumThreads", lambda n: (calls.append(n), real(n))[1])
        trainer.run()
        assert cv2.getNumThreads() == mine  # given back
        assert len(calls) <= 2  # set once for the run and restored, not once an epoch
    finally:
        monkeypatch.undo()
        cv2.setNumThreads(caller)
        trainer.close()


def test_unknown_or_wrong_sized_scheme_is_an_error_in_training():
    from facelandmarks_smt.training.trainer import Trainer, training_scheme

    with pytest.raises(ValueError, match="unknown landmark scheme"):
        training_scheme(micro_model(scheme="no-such-scheme"))
    with pytest.raises(ValueError, match="has 68 points"):
        training_scheme(micro_model(scheme="300w-68"))
    assert training_scheme(micro_model(scheme="none")) is None
    faces = synthetic_faces(8, seed=2)
    with pytest.raises(ValueError, match="unknown landmark scheme"):
        Trainer(micro_train_config(model=micro_model(scheme="no-such-scheme")), faces[:6], faces[6:],
                "/tmp/unused_scheme_test", device="cpu", progress=False)


# --- tracking -----------------------------------------------------------------------------------
def _tilted_face(angle: float, centre=(100.0, 100.0), size=60.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (68, 2)) * size
    pts[36], pts[45] = (-0.35 * size, -0.15 * size), (0.35 * size, -0.15 * size)  # outer eye corners, level
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (pts @ rot.T + np.asarray(centre)).astype(np.float32)


class RollingDetector:
    """A face tilted by 20 degrees; records the boxes and angles that tracked frames are asked with."""

    scheme = "300w-68"
    correct_rotation = True

    def __init__(self):
        self.calls = []

    def detect(self, image, boxes=None, angles=None, **kw):
        self.calls.append((None if boxes is None else np.asarray(boxes), angles))
        pts = _tilted_face(20.0)
        angle = 18.0 if boxes is None else float(angles[0]) if angles is not None else 0.0
        return [Face(landmarks=pts, scores=np.full(68, 0.9, np.float32), box=landmark_box(pts).astype(np.float32),
                     detection_score=0.99 if boxes is None else None, angle=angle)]


def test_tracked_frames_are_cropped_upright_like_detected_ones():
    from facelandmarks_smt.video import FaceTracker

    det = RollingDetector()
    tracker = FaceTracker(det, fps=10, redetect_every=10, smoothing=None)
    frame = np.zeros((200, 200, 3), np.uint8)
    first = tracker.update(frame)
    second = tracker.update(frame)
    assert first[0].detected and not second[0].detected
    boxes, angles = det.calls[1]
    assert angles is not None, "the tracked frame lost the face's roll"
    np.testing.assert_allclose(angles, [20.0], atol=1e-6)  # from the eye corners of the last landmarks
    np.testing.assert_allclose(boxes[0], upright_landmark_box(_tilted_face(20.0), 20.0), atol=1e-4)
    assert second[0].face.angle == pytest.approx(20.0)


def test_video_and_images_share_one_pixel_extent():
    from facelandmarks_smt.video import tracking

    assert tracking.inside_fraction is inside_fraction
    w, h = 64, 48
    assert inside_fraction([-0.5, -0.5, w - 0.5, h - 0.5], w, h) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole-image box is neither refused nor warned about
        check_boxes([[-0.5, -0.5, w - 0.5, h - 0.5]], (h, w, 3))


# --- what a new user hit ------------------------------------------------------------------------
def test_evaluate_works_without_matplotlib(monkeypatch, tmp_path, capsys):
    from facelandmarks_smt.training.evaluate import evaluate_predictions

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    gt = np.random.default_rng(0).uniform(0, 100, (5, 68, 2))
    report = evaluate_predictions(gt + 1.0, gt, out_dir=tmp_path)
    assert report["faces"] == 5 and (tmp_path / "report.json").is_file()
    assert not (tmp_path / "ced.png").exists()
    err = capsys.readouterr().err
    assert "ced.png skipped" in err and len(err.strip().splitlines()) == 1


def test_training_curve_is_skipped_with_a_note_without_matplotlib(monkeypatch, tmp_path, capsys):
    from facelandmarks_smt.training.trainer import Trainer

    faces = synthetic_faces(8, seed=2)
    trainer = Trainer(micro_train_config(), faces[:6], faces[6:], tmp_path, device="cpu", progress=False)
    trainer.state["history"] = [{"epoch_float": 1.0, "val_nme": 5.0, "val_nme_argmax": 6.0, "stage": 0,
                                 "val_norm": "box"}]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    trainer.plot_curve()
    assert "curve.png skipped" in capsys.readouterr().out and not (tmp_path / "curve.png").exists()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    det = Detector.from_config("tiny", device="cpu")
    save_weights(det.model, det.config, path)
    return path


def test_cli_detect_has_backend_precision_and_flip_test(monkeypatch, tmp_path, tiny_weights, capsys):
    from facelandmarks_smt import cli

    monkeypatch.setenv("FACELANDMARKS_SMT_CACHE", str(tmp_path / "cache"))
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), synthetic_faces(1, size=96)[0][0])
    out = tmp_path / "out"
    rc = cli.main(["detect", str(img), "--out", str(out), "--weights", str(tiny_weights), "--device", "cpu",
                   "--backend", "onnxruntime", "--precision", "fp32", "--flip-test", "--threads", "1",
                   "--no-progress", "--no-annotate"])
    assert rc == 0
    model = json.loads((out / "results.json").read_text())["model"]
    assert (model["backend"], model["precision"], model["flip_test"]) == ("onnxruntime", "fp32", True)
    rc = cli.main(["detect", str(img), "--out", str(tmp_path / "o2"), "--weights", str(tiny_weights),
                   "--device", "cpu", "--backend", "onnxruntime", "--precision", "int8", "--no-progress"])
    assert rc == 2 and "calibration" in capsys.readouterr().err


def test_detector_on_an_onnx_file_says_what_to_do(tmp_path):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07")
    with pytest.raises(ValueError, match="ONNX graph.*safetensors"):
        Detector(onnx_file, device="cpu")


def test_no_boxes_give_no_faces():
    det = Detector.from_config("tiny", device="cpu")
    image = np.zeros((64, 64, 3), np.uint8)
    assert det.detect(image, boxes=[]) == []
    assert det.detect(image, boxes=np.zeros((0, 4))) == []


def test_an_xywh_box_that_looks_valid_warns():
    det = Detector.from_pretrained("smtnet-300w-small", device="cpu")
    img = load_image(REPO / "examples" / "astronaut.jpg")
    box = landmark_box(det.detect(img)[0].landmarks)
    off = 60  # the face 60 px from the top-left corner: its (x, y, w, h) reads as a valid, smaller box
    x0, y0 = int(box[0]) - off, int(box[1]) - off
    sub = np.ascontiguousarray(img[y0:, x0:])
    b = box - [x0, y0, x0, y0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.detect(sub, boxes=[b])
    assert not [w for w in caught if "looks like (x, y, w, h)" in str(w.message)]
    with pytest.warns(FaceInputWarning, match=r"looks like \(x, y, w, h\)"):
        det.detect(sub, boxes=[[b[0], b[1], b[2] - b[0], b[3] - b[1]]])
    # a right box already holds a sure face: no second network call (tracked video, batch 1)
    calls = []
    real = det.predict_crops
    det.predict_crops = lambda *a, **k: calls.append(1) or real(*a, **k)
    det.detect(sub, boxes=[b])
    assert len(calls) == 1


def test_docs_say_what_the_code_does():
    readme = (REPO / "README.md").read_text()
    # the tiny model's cost in the README: the difference of the two cards' common-set NME (gt boxes)
    row = re.compile(r"\| ground-truth landmark boxes \(the paper's protocol\) \| \*\*([0-9.]+)\*\*")
    small, tiny = (float(row.search((REPO / "weights" / f"smtnet-300w-{m}.md").read_text()).group(1))
                   for m in ("small", "tiny"))
    cost = f"+{tiny - small:.2f} NME"
    assert cost in readme and readme.count(" NME") >= 1, cost
    for stale in ("+0.29 NME", "+0.36 NME"):
        assert stale not in readme or stale == cost
    assert 'calibration=["300w/afw"' not in readme  # paths a user of the library does not have
    model_md = (REPO / "docs" / "model.md").read_text()
    assert "Crop factor: 1.6" not in model_md and "1.2" in model_md
    assert "--val-fraction" not in os.popen(f"{sys.executable} -m facelandmarks_smt.training train --help").read()
    arch = (REPO / "docs" / "architecture.md").read_text()
    for part in ("geometry.py", "codec.py", "datasets/", "runtime/", "video/", "cli/", "training/"):
        assert part in arch
