"""Large-pose synthesis (training/synthesis.py): needs eos-py and eos's Surrey Face Model files
(``$FACELANDMARKS_SMT_EOS_MODEL`` or ``../shared/models/eos_sfm`` beside the repository); the
face is a shaded render of the model's mean shape that the test makes itself."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from facelandmarks_smt.schemes import get_scheme
from facelandmarks_smt.training import synthesis
from facelandmarks_smt.training.synthesis import PoseSynthesizer, draw_views, find_eos_model_dir

REPO = Path(__file__).resolve().parents[1]


def _model_dir():
    for p in (os.environ.get(synthesis.EOS_DIR_ENV), REPO.parent / "shared" / "models" / "eos_sfm"):
        if p and all((Path(p) / f).is_file() for f in synthesis.EOS_FILES):
            return Path(p)
    return None


MODEL_DIR = _model_dir()
eos = pytest.importorskip("eos", reason="eos-py not installed (pip install '.[synthesis]')")
needs_model = pytest.mark.skipif(MODEL_DIR is None, reason="eos's Surrey Face Model files not found")


def _mean_face(size=320):
    """A frontal, shaded render of the mean shape and its 68 points (jaw from the model's contour)."""
    import cv2

    model = eos.morphablemodel.load_model(str(MODEL_DIR / "sfm_shape_3448.bin"))
    v = np.asarray(model.get_shape_model().get_mean(), np.float64).reshape(-1, 3)
    tri = np.asarray(model.get_shape_model().get_triangle_list(), np.int64)
    s = 0.75 * size / np.ptp(v[:, 0])
    xy = np.stack([size / 2 + s * (v[:, 0] - v[:, 0].mean()), size / 2 - s * (v[:, 1] - v[:, 1].mean())], 1)
    img = np.full((size, size, 3), 60, np.uint8)
    n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    for t in np.argsort(v[tri, 2].mean(1)):
        if n[t, 2] <= 0:
            continue
        c = 40 + 200 * n[t, 2]
        cv2.fillConvexPoly(img, np.round(xy[tri[t]] * 16).astype(np.int32), (c, 0.8 * c, 0.7 * c), cv2.LINE_AA, 4)
    mapper = eos.core.LandmarkMapper(str(MODEL_DIR / "ibug_to_sfm.txt"))
    contour = json.loads((MODEL_DIR / "sfm_model_contours.json").read_text())["model_contour"]
    pts = np.full((68, 2), np.nan)
    for i in range(68):
        k = mapper.convert(str(i + 1))
        if k is not None:
            pts[i] = xy[int(k)]
    right, left = contour["right_contour"], contour["left_contour"]
    for j in range(8):
        pts[j] = xy[right[2 * j]]
        pts[16 - j] = xy[left[2 * j]]
    for i in (60, 64):  # inner mouth corners: the outer corners' neighbours
        pts[i] = pts[i - 12] + (0.35 if i == 60 else -0.35) * (pts[54] - pts[48]) / 2 * 0.2
    return img, pts.astype(np.float32)


@pytest.fixture(scope="module")
def synth():
    return PoseSynthesizer(MODEL_DIR)


@pytest.fixture(scope="module")
def face():
    return _mean_face()


@needs_model
def test_zero_rotation_returns_the_labels_and_the_image(synth, face):
    img, pts = face
    fit = synth.fit(pts, (img.shape[1], img.shape[0]))
    assert fit.residual < 0.03
    # the fitted mesh's mapped vertices at zero turn are exactly the fit's own projection
    idx = list(fit.mapped.values())
    p0 = fit.project(fit.eye(fit.model_vertices[idx]))[:, :2]
    p1 = fit.project(fit.eye(fit.model_vertices[idx], 0.0, 0.0))[:, :2]
    assert np.abs(p0 - p1).max() < 1e-9
    assert np.linalg.norm(p0 - pts[list(fit.mapped.keys())], axis=1).mean() < 0.03 * np.ptp(pts, 0).max()
    out, new = synth.render(img, pts, fit, 0.0, 0.0)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(new - pts).max() < 1.0  # within 1 px of the labels
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 2.0


@needs_model
def test_left_and_right_turns_mirror_each_other(synth, face):
    img, pts = face
    fit = synth.fit(pts, (img.shape[1], img.shape[0]))
    _, right = synth.render(img, pts, fit, 40.0)
    _, left = synth.render(img, pts, fit, -40.0)
    axis = float(np.mean(pts[[27, 28, 29, 30, 8], 0]))  # the symmetric face's midline
    mirrored = np.stack([2 * axis - right[:, 0], right[:, 1]], 1)[list(get_scheme("300w-68").flip_permutation)]
    side = np.ptp(pts, 0).max()
    err = np.linalg.norm(mirrored - left, axis=1)
    assert err.mean() < 0.03 * side, err.mean() / side
    # and the turn really moved the face: the nose tip shifts sideways by a good part of the face
    assert abs(right[30, 0] - pts[30, 0]) > 0.1 * side
    assert np.sign(right[30, 0] - pts[30, 0]) == -np.sign(left[30, 0] - pts[30, 0])


@needs_model
def test_away_side_jaw_moves_onto_the_silhouette(synth, face):
    """Turned 60 degrees, the jaw points of the side turning away lie on the face's outline, inside
    where the 3D jaw would project (never beyond the nose-side of the turned face)."""
    img, pts = face
    fit = synth.fit(pts, (img.shape[1], img.shape[0]))
    out, new = synth.render(img, pts, fit, 60.0)
    jaw_l, jaw_r = new[0:8, 0], new[9:17, 0]
    # one side's jaw must be compressed toward the middle (the silhouette), the other spread
    assert np.ptp(new[:17, 0]) < np.ptp(pts[:17, 0])
    assert np.isfinite(new).all()
    assert (new[:, 0] > -1).all() and (new[:, 0] < img.shape[1]).all()


@needs_model
def test_bad_input(synth, face):
    img, pts = face
    with pytest.raises(ValueError, match="68"):
        synth.fit(pts[:60], (img.shape[1], img.shape[0]))
    bad = pts.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        synth.fit(bad, (img.shape[1], img.shape[0]))
    fit = synth.fit(pts, (img.shape[1], img.shape[0]))
    with pytest.raises(ValueError, match="fit was made for"):
        synth.render(img[:100], pts, fit, 30.0)
    with pytest.raises(ValueError, match="uint8"):
        synth.render(img.astype(np.float32), pts, fit, 30.0)


def test_missing_eos_and_model_give_clear_errors(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "eos", None)
    with pytest.raises(ImportError, match="eos-py"):
        PoseSynthesizer(tmp_path)
    monkeypatch.delitem(sys.modules, "eos")
    with pytest.raises(FileNotFoundError, match="lacks"):
        find_eos_model_dir(tmp_path)
    monkeypatch.delenv(synthesis.EOS_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="--eos-model"):
        find_eos_model_dir(None)


def test_draw_views_keep_the_side_and_range():
    rng = np.random.default_rng(0)
    for yaw, pitch in draw_views(rng, 25.0, 50, 90.0, 20.0, 10.0):
        assert 20.0 - 1e-9 <= 25.0 + yaw <= 90.0 + 1e-9  # keeps turning the way the face looks
        assert abs(pitch) <= 10.0
    signs = {np.sign(y) for y, _ in draw_views(np.random.default_rng(1), 0.0, 40, 90.0)}
    assert signs == {-1.0, 1.0}  # a frontal face turns both ways


@needs_model
def test_synthesize_folder_writes_readable_views_and_resumes(tmp_path, face):
    import cv2

    from facelandmarks_smt.datasets import load_datasets, write_pts

    img, pts = face
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "mean.png"), img[:, :, ::-1])
    write_pts(src / "mean.pts", pts)
    out = tmp_path / "out"
    c1 = synthesis.synthesize_folder([str(src)], out, views=2, eos_model_dir=MODEL_DIR, progress=False)
    assert c1["written"] == 2
    ds = load_datasets([str(out)])
    assert len(ds) == 2 and ds.num_landmarks == 68
    rec = json.loads((out / "synthesis.jsonl").read_text().splitlines()[0])
    assert rec["residual"] < 0.03 and len(rec["views"]) == 2
    c2 = synthesis.synthesize_folder([str(src)], out, views=2, eos_model_dir=MODEL_DIR, progress=False)
    assert c2["written"] == 0 and c2["skipped_done"] == 1
    # a face rejected for its fit is remembered, not refitted and logged again
    strict = tmp_path / "strict"
    for _ in range(2):
        c3 = synthesis.synthesize_folder([str(src)], strict, views=2, max_residual=1e-9, eos_model_dir=MODEL_DIR,
                                         progress=False)
        assert c3["skipped_fit"] == 1 and c3["written"] == 0
    assert len((strict / "synthesis.jsonl").read_text().splitlines()) == 1
    with pytest.raises(ValueError, match="other settings"):
        synthesis.synthesize_folder([str(src)], out, views=2, max_yaw=60.0, eos_model_dir=MODEL_DIR, progress=False)


def test_select_views_links_by_final_yaw_and_view_number(tmp_path):
    """`select_views` (the `select-views` command) keeps views by |fitted yaw + turn| and view number,
    as links, idempotently; a folder that is not a synthesis output is named in the error."""
    from facelandmarks_smt.training.cli import main

    src = tmp_path / "synth"
    src.mkdir()
    recs = [{"name": "a", "yaw_pitch_roll": [10.0, 0, 0], "views": [{"file": "a_v0.jpg", "yaw": 60.0},
                                                                   {"file": "a_v1.jpg", "yaw": -85.0}]},
            {"name": "b", "yaw_pitch_roll": [-20.0, 0, 0], "views": [{"file": "b_v0.jpg", "yaw": -65.0},
                                                                    {"file": "b_v1.jpg", "yaw": 40.0}]},
            {"name": "c", "yaw_pitch_roll": [0.0, 0, 0], "skipped": "fit residual above max_residual"}]
    (src / "synthesis.0of2.jsonl").write_text("\n".join(json.dumps(r) for r in recs[:2]) + "\n")
    (src / "synthesis.1of2.jsonl").write_text(json.dumps(recs[2]) + "\n")
    for stem in ("a_v0", "a_v1", "b_v0", "b_v1"):
        (src / f"{stem}.jpg").write_bytes(b"x")
        (src / f"{stem}.pts").write_text(stem)
    # final yaws: a_v0 70, a_v1 -75, b_v0 -85 (dropped), b_v1 20
    assert synthesis.select_views(src, tmp_path / "all") == 3
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "a_v0.jpg", "a_v0.pts", "a_v1.jpg", "a_v1.pts", "b_v1.jpg", "b_v1.pts"]
    assert (tmp_path / "all" / "a_v1.pts").is_symlink() and (tmp_path / "all" / "a_v1.pts").read_text() == "a_v1"
    assert synthesis.select_views(src, tmp_path / "all") == 3  # idempotent
    assert main(["select-views", "--synth", str(src), "--out", str(tmp_path / "v0"), "--views", "0",
                 "--max-final-yaw", "75"]) == 0
    assert sorted(p.name for p in (tmp_path / "v0").iterdir()) == ["a_v0.jpg", "a_v0.pts"]
    assert main(["select-views", "--synth", str(tmp_path / "all"), "--out", str(tmp_path / "x")]) == 2
    # the hardest turns only (|final yaw| 72 to 80): a_v1 (-75)
    assert synthesis.select_views(src, tmp_path / "hard", min_final_yaw=72) == 1
    assert sorted(p.name for p in (tmp_path / "hard").iterdir()) == ["a_v1.jpg", "a_v1.pts"]
    assert main(["select-views", "--synth", str(src), "--out", str(tmp_path / "y"), "--min-final-yaw", "90"]) == 2
