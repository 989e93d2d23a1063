"""Dataset readers, on tiny files written here (plus an optional look at the real 300-W crops)."""

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelandmarks_smt.training.datasets import (
    AflwMatDataset,
    CofwMatDataset,
    CsvDataset,
    DlibXmlDataset,
    JsonDataset,
    LandmarkDataset,
    PtsFolderDataset,
    load_datasets,
    read_pts,
    split_dataset,
    three_hundred_w,
    write_pts,
)

scipy_io = pytest.importorskip("scipy.io")

REAL = Path("/work/shared/data/landmarks68")


def _image(path: Path, h=12, w=16, color=(10, 20, 200)) -> None:
    """A tiny image whose pixels are RGB ``color`` (written as BGR by OpenCV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = color
    assert cv2.imwrite(str(path), img[:, :, ::-1].copy())


def _pts_text(points, header=True):
    body = "\n".join(f"{x} {y}" for x, y in points)
    if header:
        return f"version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n"
    return body + "\n"


# --- .pts ---------------------------------------------------------------------------------------
def test_read_pts_with_and_without_header(tmp_path):
    pts = [(1.0, 1.0), (10.5, 20.25), (3, 4)]
    a = tmp_path / "a.pts"
    a.write_text(_pts_text(pts))
    b = tmp_path / "b.pts"
    b.write_text(_pts_text(pts, header=False))
    ra, rb = read_pts(a), read_pts(b)
    assert ra.dtype == np.float32 and ra.shape == (3, 2)
    assert np.allclose(ra, np.array(pts) - 1)  # 1-based -> 0-based
    assert np.allclose(ra, rb)
    assert np.allclose(read_pts(a, one_based=False), pts)
    # round trip
    write_pts(tmp_path / "c.pts", ra)
    assert np.allclose(read_pts(tmp_path / "c.pts"), ra, atol=1e-3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points: 3"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "closing"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 oops\n}\n", ":5"),
        ("version: 1\nn_points: 2\n{\n1 2 3\n3 4\n}\n", "expected 'x y'"),
        ("", "no points"),
        ("version: 1\nn_points: 2\n{\n}\n", "no points"),
        ("version: 1\nn_points: x\n{\n1 2\n}\n", "n_points"),
        ("1 2\n}\n", "without a matching"),
    ],
)
def test_read_pts_malformed(tmp_path, text, message):
    p = tmp_path / "bad.pts"
    p.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_pts(p)
    assert "bad.pts" in str(info.value)


def test_pts_folder_dataset(tmp_path):
    for rel, off in [("x/a.jpg", 0), ("x/sub/b.PNG", 5)]:
        _image(tmp_path / rel)
        (tmp_path / rel).with_suffix(".pts").write_text(_pts_text([(1 + off, 2), (3, 4 + off)]))
    _image(tmp_path / "x/no_annotation.jpg")
    (tmp_path / "x/notes.txt").write_text("hi")
    ds = PtsFolderDataset(tmp_path / "x")
    assert isinstance(ds, LandmarkDataset) and len(ds) == 2 and ds.num_landmarks == 2
    assert [m["name"] for m in ds.metas] == ["a", "sub/b"]
    img, lm, meta = ds[0]
    assert img.shape == (12, 16, 3) and img.dtype == np.uint8
    assert abs(int(img[0, 0, 0]) - 10) <= 3 and abs(int(img[0, 0, 2]) - 200) <= 3  # RGB order
    assert lm.dtype == np.float32 and np.allclose(lm, [[0, 1], [2, 3]])
    assert meta["path"].endswith("a.jpg") and meta["name"] == "a"
    lm[:] = 99  # callers may modify samples in place without touching the dataset
    assert np.allclose(ds[0][1], [[0, 1], [2, 3]])
    assert ds.items[1][0].endswith("b.PNG")
    assert ds[-1][2]["name"] == "sub/b"
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(FileNotFoundError):
        PtsFolderDataset(tmp_path / "missing")


def test_mixed_landmark_counts_rejected(tmp_path):
    _image(tmp_path / "a.jpg")
    (tmp_path / "a.pts").write_text(_pts_text([(1, 1), (2, 2)]))
    _image(tmp_path / "b.jpg")
    (tmp_path / "b.pts").write_text(_pts_text([(1, 1), (2, 2), (3, 3)]))
    with pytest.raises(ValueError, match="one landmark scheme"):
        PtsFolderDataset(tmp_path)


# --- CSV / JSON / XML ---------------------------------------------------------------------------
def test_csv_dataset(tmp_path):
    _image(tmp_path / "imgs/a.jpg")
    _image(tmp_path / "imgs/b.jpg")
    (tmp_path / "faces.csv").write_text("name,x0,y0,x1,y1\na.jpg,1,2,3,4\n\nb.jpg,5,6,7,8\n")
    ds = CsvDataset(tmp_path / "faces.csv", tmp_path / "imgs")
    assert len(ds) == 2
    assert np.allclose(ds[1][1], [[5, 6], [7, 8]])
    assert ds[0][0].shape == (12, 16, 3)
    (tmp_path / "imgs/nohdr.csv").write_text("a.jpg,1,2,3,4\n")
    one = CsvDataset(tmp_path / "imgs/nohdr.csv", one_based=True)  # image root = csv folder
    assert len(one) == 1 and np.allclose(one.items[0][1], [[0, 1], [2, 3]])
    (tmp_path / "odd.csv").write_text("a.jpg,1,2,3\n")
    with pytest.raises(ValueError, match=r"odd.csv:1"):
        CsvDataset(tmp_path / "odd.csv")
    (tmp_path / "text.csv").write_text("name,x0,y0\na.jpg,1,2\nb.jpg,1,zz\n")
    with pytest.raises(ValueError, match=r"text.csv:3"):
        CsvDataset(tmp_path / "text.csv")


def test_json_dataset(tmp_path):
    _image(tmp_path / "d/a.jpg")
    recs = [{"image": "d/a.jpg", "landmarks": [[1, 2], [3, 4]], "box": [0, 0, 5, 5]}]
    (tmp_path / "f.json").write_text(json.dumps(recs))
    ds = JsonDataset(tmp_path / "f.json")
    img, lm, meta = ds[0]
    assert np.allclose(lm, [[1, 2], [3, 4]]) and meta["box"] == (0, 0, 5, 5)
    assert meta["name"] == "d/a" and img.shape == (12, 16, 3)
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "a.jpg"}]))
    with pytest.raises(ValueError, match="landmarks"):
        JsonDataset(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        JsonDataset(tmp_path / "broken.json")


DLIB_XML = """<?xml version='1.0' encoding='ISO-8859-1'?>
<dataset><name>t</name>
<images>
  <image file='img/a.jpg'>
    <box top='1' left='2' width='10' height='8'>
      <part name='02' x='5' y='6'/>
      <part name='00' x='1' y='2'/>
      <part name='01' x='3' y='4'/>
    </box>
    <box top='0' left='0' width='3' height='3' ignore='1'>
      <part name='00' x='9' y='9'/><part name='01' x='9' y='9'/><part name='02' x='9' y='9'/>
    </box>
    <box top='2' left='3' width='4' height='4'>
      <part name='10' x='7' y='8'/><part name='9' x='5' y='6'/><part name='11' x='9' y='10'/>
    </box>
  </image>
  <image file='img/b.jpg'><box top='0' left='0' width='5' height='5'/></image>
</images></dataset>
"""


def test_dlib_xml_dataset(tmp_path):
    _image(tmp_path / "img/a.jpg")
    (tmp_path / "faces.xml").write_text(DLIB_XML)
    ds = DlibXmlDataset(tmp_path / "faces.xml")
    assert len(ds) == 2  # ignored box and box without parts are skipped
    img, lm, meta = ds[0]
    assert np.allclose(lm, [[1, 2], [3, 4], [5, 6]])  # sorted by part name
    assert meta["box"] == (2, 1, 11, 8)
    assert np.allclose(ds[1][1], [[5, 6], [7, 8], [9, 10]])  # numeric order: 9, 10, 11
    assert ds.metas[0]["name"] != ds.metas[1]["name"]
    (tmp_path / "bad.xml").write_text("<dataset><images><image file='a.jpg'>")
    with pytest.raises(ValueError, match="malformed XML"):
        DlibXmlDataset(tmp_path / "bad.xml")


# --- AFLW / COFW .mat ---------------------------------------------------------------------------
def _write_aflw(tmp_path, n=5):
    rng = np.random.default_rng(0)
    names = np.empty((n, 1), dtype=object)
    data = np.zeros((n, 38))
    mask = np.ones((n, 19))
    bbox = np.zeros((n, 4))
    for i in range(n):
        names[i, 0] = np.array([f"{i % 2}/image{i:05d}.jpg"])
        _image(tmp_path / "flickr" / f"{i % 2}" / f"image{i:05d}.jpg")
        data[i, :19] = np.arange(19) + 1 + i  # x, 1-based
        data[i, 19:] = np.arange(19) + 101  # y, 1-based
        bbox[i] = (11, 51, 21, 41)  # left, right, top, bottom (1-based)
    mask[1, 3] = 0
    mask[3, 0] = 0
    ra = np.array([[3, 5, 1, 2, 4]])  # 1-based permutation
    scipy_io.savemat(tmp_path / "AFLWinfo_release.mat",
                     {"nameList": names, "data": data, "mask_new": mask, "bbox": bbox, "ra": ra})
    return tmp_path / "AFLWinfo_release.mat"


def test_aflw_mat_dataset(tmp_path):
    mat = _write_aflw(tmp_path)
    root = tmp_path / "flickr"
    full = AflwMatDataset(mat, root)
    assert len(full) == 5 and full.num_landmarks == 19
    img, lm, meta = full[0]
    assert img.shape == (12, 16, 3)
    assert np.allclose(lm[:, 0], np.arange(19)) and np.allclose(lm[:, 1], np.arange(19) + 100)
    assert meta["box"] == (10, 20, 50, 40)  # (x1, y1, x2, y2), 0-based
    assert meta["box_size"] == pytest.approx(np.sqrt(40 * 20))
    assert meta["name"] == "0/image00000" and meta["visible"].all()
    train = AflwMatDataset(mat, root, split="train", num_train=3)
    test = AflwMatDataset(mat, root, split="test", num_train=3)
    assert [m["index"] for m in train.metas] == [2, 4, 0]  # ra[:3] - 1, in ra order
    assert [m["index"] for m in test.metas] == [1, 3]
    frontal = AflwMatDataset(mat, root, split="test", protocol="frontal", num_train=3)
    assert len(frontal) == 0
    assert [m["index"] for m in AflwMatDataset(mat, root, protocol="frontal").metas] == [0, 2, 4]
    assert not AflwMatDataset(mat, root, split="test", num_train=3).metas[0]["visible"][3]
    with pytest.raises(ValueError):
        AflwMatDataset(mat, root, split="val")
    scipy_io.savemat(tmp_path / "wrong.mat", {"data": np.zeros((2, 38))})
    with pytest.raises(ValueError, match="missing fields"):
        AflwMatDataset(tmp_path / "wrong.mat", root)


def test_cofw_mat_dataset(tmp_path):
    color = np.zeros((6, 7, 3), np.uint8)
    color[..., 0] = 200
    grey = np.full((5, 4), 77, np.uint8)
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = color, grey
    scipy_io.savemat(tmp_path / "COFW_test_color.mat", {"IsT": cells})
    ann = tmp_path / "test_annotations"
    ann.mkdir()
    for k in (1, 2):
        pts = np.stack([np.arange(68) + k, np.full(68, 2)], axis=1).astype(float)
        occ = np.zeros((68, 1))
        occ[5] = 1
        scipy_io.savemat(ann / f"{k}_points.mat", {"Points": pts, "Occ": occ})
    ds = CofwMatDataset(tmp_path / "COFW_test_color.mat", ann)
    assert len(ds) == 2 and ds.num_landmarks == 68
    img, lm, meta = ds[0]
    assert img.shape == (6, 7, 3) and img[0, 0, 0] == 200 and img[0, 0, 1] == 0
    assert np.allclose(lm[:, 0], np.arange(68)) and np.allclose(lm[:, 1], 1)
    assert meta["occluded"][5] and meta["occluded"].sum() == 1
    img2, lm2, _ = ds[1]
    assert img2.shape == (5, 4, 3) and (img2 == 77).all()
    assert np.allclose(lm2[:, 0], np.arange(68) + 1)
    # picklable (DataLoader workers) and still loads after unpickling
    again = pickle.loads(pickle.dumps(ds))
    assert again[1][0].shape == (5, 4, 3)
    (ann / "4_points.mat").write_bytes((ann / "1_points.mat").read_bytes())
    with pytest.raises(ValueError, match="without gaps"):
        CofwMatDataset(tmp_path / "COFW_test_color.mat", ann)


# --- splits, 300-W, auto-detect -----------------------------------------------------------------
def _tiny_dataset(n):
    return LandmarkDataset([(f"/nowhere/{i}.jpg", np.full((3, 2), i, np.float32)) for i in range(n)])


def test_split_dataset_deterministic():
    ds = _tiny_dataset(20)
    tr1, va1 = split_dataset(ds, 0.25, seed=3)
    tr2, va2 = split_dataset(ds, 0.25, seed=3)
    names = lambda d: [m["name"] for m in d.metas]  # noqa: E731
    assert names(tr1) == names(tr2) and names(va1) == names(va2)
    assert len(va1) == 5 and len(tr1) == 15
    assert sorted(names(tr1) + names(va1), key=int) == [str(i) for i in range(20)]
    assert not set(names(tr1)) & set(names(va1))
    assert names(split_dataset(ds, 0.25, seed=4)[1]) != names(va1)
    assert len(split_dataset(_tiny_dataset(3), 0.01)[1]) == 1
    assert len(split_dataset(ds, 0.0)[1]) == 0
    with pytest.raises(ValueError):
        split_dataset(ds, 1.0)


def _face(dir_: Path, name: str):
    _image(dir_ / f"{name}.jpg")
    (dir_ / f"{name}.pts").write_text(_pts_text([(1, 1), (2, 2)]))


def test_three_hundred_w_discovery(tmp_path):
    base = tmp_path / "data" / "300W"  # parent layout, upper-case names
    for rel in ["AFW", "helen/trainset", "LFPW/trainset", "helen/testset", "lfpw/testset"]:
        _face(base / rel, "f1")
    _face(base / "lfpw/testset", "f2")
    train = three_hundred_w(tmp_path / "data", "train")
    assert len(train) == 3
    assert sorted(m["name"] for m in train.metas) == ["AFW/f1", "LFPW/trainset/f1", "helen/trainset/f1"]
    common = three_hundred_w(base, "common")  # the 300-W folder itself works too
    assert len(common) == 3 and {m["name"] for m in common.metas} >= {"helen/testset/f1", "lfpw/testset/f1"}
    with pytest.raises(FileNotFoundError, match="ibug"):
        three_hundred_w(tmp_path / "data", "challenge")
    with pytest.raises(FileNotFoundError, match="ibug"):
        three_hundred_w(tmp_path / "data", "full")
    _face(base / "IBUG", "c1")
    assert len(three_hundred_w(tmp_path / "data", "full")) == 4
    assert len(three_hundred_w(tmp_path / "data", "challenge")) == 1
    with pytest.raises(ValueError):
        three_hundred_w(base, "everything")


def test_load_datasets_picks_readers(tmp_path):
    _face(tmp_path / "folder", "a")
    _image(tmp_path / "b.jpg")
    (tmp_path / "x.csv").write_text("b.jpg,1,2,3,4\n")
    (tmp_path / "x.json").write_text(json.dumps([{"image": "b.jpg", "landmarks": [[0, 0], [1, 1]]}]))
    (tmp_path / "x.xml").write_text(
        "<dataset><images><image file='b.jpg'><box top='0' left='0' width='4' height='4'>"
        "<part name='0' x='1' y='1'/><part name='1' x='2' y='2'/></box></image></images></dataset>"
    )
    ds = load_datasets([tmp_path / "folder", tmp_path / "x.csv", tmp_path / "x.json", tmp_path / "x.xml"])
    assert type(ds) is LandmarkDataset and len(ds) == 4
    assert [m["source"] for m in ds.metas] == ["pts", "csv", "json", "dlib-xml"]
    assert all(ds[i][0].shape == (12, 16, 3) for i in range(4))
    sub = ds[1:3]
    assert len(sub) == 2 and sub.metas[0]["source"] == "csv"
    with pytest.raises(ValueError, match="don't know"):
        load_datasets([tmp_path / "b.jpg"])
    with pytest.raises(FileNotFoundError):
        load_datasets([tmp_path / "nope.csv"])


def test_real_300w_files():
    folder = REAL / "300w" / "afw"
    if not folder.is_dir():
        pytest.skip("real 300-W crops not available")
    pts_files = sorted(folder.glob("*.pts"))[:3]
    for p in pts_files:
        lm = read_pts(p)
        assert lm.shape == (68, 2)
        img = cv2.imread(str(p.with_suffix(".jpg")))
        h, w = img.shape[:2]
        assert (lm >= -1).all() and (lm[:, 0] < w).all() and (lm[:, 1] < h).all()
        # a frontal-ish face: image-left eye corner (36) left of the image-right one (45)
        assert lm[36, 0] < lm[45, 0]
