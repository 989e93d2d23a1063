"""docs/scripts/plot_landmarks.py still runs and draws both schemes (docs/landmarks.md's pictures)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelandmarks_smt import hub

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("matplotlib")


@pytest.mark.skipif("smtnet-300w-small" not in hub.available(), reason="shipped weights not installed")
def test_plot_script_writes_both_pictures(tmp_path):
    spec = importlib.util.spec_from_file_location("plot_landmarks", REPO / "docs" / "scripts" / "plot_landmarks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path)]) == 0
    for name, committed in (("landmarks-68.png", (1600, 920)), ("landmarks-19.png", (900, 960))):
        img = Image.open(tmp_path / name)
        assert img.size == committed == Image.open(REPO / "docs" / "images" / name).size
        assert np.asarray(img.convert("RGB")).std() > 20      # a picture, not a blank canvas
    assert (REPO / "docs" / "landmarks.md").read_text().count("](images/landmarks-") == 2
