"""Shared fixtures: small synthetic "faces" the tests make themselves (no data files needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

def pytest_configure(config):
    config.addinivalue_line("markers", "real_auto_path: backend/precision 'auto' follows this machine's CPU "
                                       "(elsewhere the suite pins it to torch fp32)")


@pytest.fixture(scope="session", autouse=True)
def _pin_auto_path():
    """``backend="auto"`` / ``precision="auto"`` (the defaults) resolve to torch fp32 in the tests, so that
    their numbers and run time do not depend on the CPU running them (torch bf16 where it has native
    bf16, onnxruntime fp32 elsewhere). Session-scoped, so module-scoped detectors are pinned too;
    tests/test_auto_path.py tests the real rule (marked ``real_auto_path``). Yields the real rules."""
    from facelandmarks_smt.runtime import backends

    patch = pytest.MonkeyPatch()
    real = backends.auto_path, backends.auto_precision
    patch.setattr(backends, "auto_path", lambda device, int8_ready=False: ("torch", "fp32"))
    patch.setattr(backends, "auto_precision", lambda backend, device: "fp32")
    yield real
    patch.undo()


@pytest.fixture(autouse=True)
def _real_auto_path(request, monkeypatch, _pin_auto_path):
    if request.node.get_closest_marker("real_auto_path") is not None:
        from facelandmarks_smt.runtime import backends

        monkeypatch.setattr(backends, "auto_path", _pin_auto_path[0])
        monkeypatch.setattr(backends, "auto_precision", _pin_auto_path[1])


COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
                    [255, 128, 0], [128, 0, 255], [255, 255, 255], [0, 128, 0]], np.uint8)


def synthetic_faces(n: int, num_landmarks: int = 6, size: int = 160, seed: int = 0):
    """``n`` samples ``(image, landmarks, meta)``: coloured discs (one colour per landmark) on a
    textured grey background, each landmark at a random spot inside a random face box."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        side = rng.uniform(0.45, 0.6) * size
        x0, y0 = rng.uniform(0.1 * size, size - side - 0.1 * size, 2)
        pts = np.stack([x0 + rng.uniform(0, side, num_landmarks), y0 + rng.uniform(0, side, num_landmarks)], 1)
        pts[0] = [x0, y0]
        pts[1] = [x0 + side, y0 + side]  # fix the landmark box to the face box
        for j, (x, y) in enumerate(pts):
            c = tuple(int(v) for v in COLOURS[j % len(COLOURS)])
            cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 12, c, -1, cv2.LINE_AA, shift=2)
        out.append((img, pts.astype(np.float32), {"name": f"synthetic_{i}", "path": f"synthetic_{i}.png"}))
    return out
