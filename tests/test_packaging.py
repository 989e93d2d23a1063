"""A non-editable install carries the small model: build the wheel as pip would, look inside, and
resolve the model by name from the installed copy in another folder."""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from facelandmarks_smt import hub

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("setuptools")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")          # build from a copy: no build/ or egg-info in the checkout
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "facelandmarks_smt", src / "facelandmarks_smt",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "--disable-pip-version-check", "-q", str(src), "-w", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("facelandmarks_smt-*.whl")
    return whl


def test_wheel_contains_the_registered_weights(wheel):
    entry = hub.REGISTRY["smtnet-300w-small"]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        member = f"facelandmarks_smt/weights/{entry.filename}"
        assert member in names
        assert hashlib.sha256(z.read(member)).hexdigest() == entry.sha256
        requires = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: huggingface-hub" in requires


def test_installed_wheel_resolves_the_model_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                        "--disable-pip-version-check", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACELANDMARKS_SMT_", "HF_"))}
    env.update(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               XDG_CACHE_HOME=str(tmp_path / "xdg"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("from facelandmarks_smt import hub\n"
            "path, sha = hub.resolve('smtnet-300w-small')\n"
            "print(path); print(hub.available())\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.splitlines()[0])
    assert path == site / "facelandmarks_smt" / "weights" / "smtnet-300w-small.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.REGISTRY["smtnet-300w-small"].sha256
    assert "smtnet-300w-small" in r.stdout.splitlines()[1]
