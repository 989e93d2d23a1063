"""Draw the landmark schemes of docs/landmarks.md on a real face, every index numbered.

The face is examples/astronaut.jpg (NASA, public domain), its landmarks those of the shipped
``smtnet-300w-small`` model for the face's landmark box; the 19 AFLW points are derived from them
with `facelandmarks_smt.schemes.map_68_to_19`, exactly as ``Detector(..., scheme="aflw-19")`` does.

    python docs/scripts/plot_landmarks.py               # writes docs/images/landmarks-68.png, -19.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "examples" / "astronaut.jpg"
BOX = [178, 87, 270, 178]  # the landmark box of the astronaut's face (x1, y1, x2, y2)

# Groups of the 68-point scheme: (name, indices, colour, how labels are pushed away from the points).
GROUPS_68 = [
    ("jaw", range(0, 17), "#1f77b4", "out"),
    ("brows", range(17, 27), "#9467bd", "up"),
    ("nose bridge", range(27, 31), "#d62728", "right"),
    ("nose base", range(31, 36), "#d62728", "down"),
    ("eyes", range(36, 42), "#2ca02c", "eye"),
    ("eyes", range(42, 48), "#2ca02c", "eye"),
    ("outer lips", range(48, 60), "#ff7f0e", "lips-out"),
    ("inner lips", range(60, 68), "#8c564b", "lips-in"),
]
GROUPS_19 = [
    ("brows", range(0, 6), "#9467bd", "up"),
    ("eyes", range(6, 12), "#2ca02c", "eye19"),
    ("nose", range(12, 15), "#d62728", "down"),
    ("mouth", range(15, 18), "#ff7f0e", "down"),
    ("chin", range(18, 19), "#1f77b4", "down"),
]


def face_landmarks() -> np.ndarray:
    from facelandmarks_smt import Detector

    det = Detector.from_pretrained("smtnet-300w-small", device="cpu")
    return det.detect(IMAGE, boxes=[BOX])[0].landmarks


def _label_offsets(points: np.ndarray, groups, face_centre: np.ndarray, dist: float) -> np.ndarray:
    """A label offset per point: away from its group (or face) centre, so labels do not cover points."""
    offsets = np.zeros_like(points)
    mouth_centre = points[48:68].mean(0) if len(points) == 68 else None
    for _, idx, _, how in groups:
        idx = list(idx)
        pts = points[idx]
        centre = pts.mean(0)
        for i, p in zip(idx, pts):
            if how == "up":
                d = np.array([0.0, -1.0])
            elif how == "down":
                d = np.array([(p - centre)[0] * 0.05, 1.0])
            elif how == "right":
                d = np.array([1.0, 0.0])
            elif how == "lips-out":  # outer lip: corners sideways, the rest up or down, off the mouth
                d = p - mouth_centre
                d = np.array([d[0], 0.0]) if i in (48, 54) else np.array([0.0, d[1]])
            elif how == "lips-in":  # inner lip: all downwards (upper into the opening), corners inwards
                d = p - mouth_centre
                d = np.array([-d[0], abs(d[0])]) if i in (60, 64) else np.array([0.0, 1.0])
            elif how == "eye19":
                d = np.array([0.0, -1.0]) if i in (7, 10) else np.array([0.0, 1.0])
            elif how == "eye":
                d = p - centre
                d[1] = 1.6 * d[1] if abs(d[1]) > 0.3 else 0.0
            else:  # "out": away from the face centre
                d = p - face_centre
            n = np.linalg.norm(d)
            offsets[i] = d / n * dist if n > 1e-9 else np.array([0.0, -dist])
    return offsets


def _panel(ax, image, points, groups, centre, half_w, half_h, dist, fontsize, marker, labelled, background=None):
    """One view of the face: points coloured by group, the ``labelled`` ones numbered."""
    ax.imshow(image, interpolation="lanczos")
    ax.set_xlim(centre[0] - half_w, centre[0] + half_w)
    ax.set_ylim(centre[1] + half_h, centre[1] - half_h)
    ax.set_xticks([])
    ax.set_yticks([])
    if background is not None:  # the 68 points a 19-point layout is derived from
        ax.scatter(background[:, 0], background[:, 1], s=6, c="white", edgecolors="black", linewidths=0.3, zorder=2)
    offsets = _label_offsets(points, groups, centre, dist)
    seen = set()
    for name, idx, colour, _ in groups:
        idx = list(idx)
        ax.scatter(points[idx, 0], points[idx, 1], s=marker, c=colour, edgecolors="white", linewidths=0.6,
                   zorder=3, label=None if name in seen else name)
        seen.add(name)
        for i in idx:
            if i not in labelled:
                continue
            tx, ty = points[i] + offsets[i]
            ax.plot([points[i, 0], tx], [points[i, 1], ty], lw=0.6, c=colour, zorder=2)
            ax.text(tx, ty, str(i), fontsize=fontsize, ha="center", va="center", color="black", zorder=4,
                    fontweight="bold", bbox=dict(boxstyle="round,pad=0.12", fc="white", ec=colour, lw=0.8, alpha=0.85))


def _save(fig, out: Path) -> None:
    """Save as a 256-colour PNG: a third of the size of a true-colour one, and fine for a diagram."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)


def _extent(points: np.ndarray, margin: float):
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2, margin * (hi - lo) / 2


def draw_68(image: np.ndarray, points: np.ndarray, out: Path) -> None:
    """The face with every point, numbered outside the mouth, and the mouth enlarged beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    centre, half = _extent(points, 1.24)
    half = np.full(2, half.max())
    mouth_c, mouth_half = _extent(points[48:68], 1.35)
    mouth_half[1] = max(mouth_half[1], mouth_half[0] * 0.62)
    fig = plt.figure(figsize=(16, 9.2), dpi=100)
    ax = fig.add_axes([0.005, 0.005, 0.55, 0.94])
    _panel(ax, image, points, GROUPS_68, centre, half[0], half[1], dist=half[0] * 0.045, fontsize=9,
           marker=24, labelled=set(range(48)))
    ax.add_patch(Rectangle(mouth_c - mouth_half, *(2 * mouth_half), fill=False, ec="white", ls="--", lw=1))
    ax.legend(loc="lower left", fontsize=10, framealpha=0.85)
    ax.set_title("300w-68: the iBUG 300-W 68 points (0-based; image left = the subject's right)", fontsize=12)
    axm = fig.add_axes([0.565, 0.2, 0.43, 0.6])
    _panel(axm, image, points, GROUPS_68, mouth_c, mouth_half[0], mouth_half[1], dist=mouth_half[0] * 0.075,
           fontsize=11, marker=60, labelled=set(range(48, 68)))
    axm.set_title("the mouth, enlarged: outer lips 48-59, inner lips 60-67", fontsize=12)
    _save(fig, out)


def draw_19(image: np.ndarray, points: np.ndarray, points68: np.ndarray, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre, half = _extent(points68, 1.24)
    half = half.max()
    fig = plt.figure(figsize=(9, 9.6), dpi=100)
    ax = fig.add_axes([0.01, 0.01, 0.98, 0.94])
    _panel(ax, image, points, GROUPS_19, centre, half, half, dist=half * 0.07, fontsize=12, marker=60,
           labelled=set(range(19)), background=points68)
    ax.legend(loc="lower left", fontsize=10, framealpha=0.85)
    ax.set_title("aflw-19: AFLW's 19 points, derived from the 68 (white dots)", fontsize=12)
    _save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder for the PNGs")
    args = p.parse_args(argv)
    from facelandmarks_smt.images import load_image
    from facelandmarks_smt.schemes import map_68_to_19

    image = load_image(IMAGE)
    pts68 = face_landmarks()
    pts19 = map_68_to_19(pts68)
    draw_68(image, pts68, args.out / "landmarks-68.png")
    draw_19(image, pts19, pts68, args.out / "landmarks-19.png")
    print(f"wrote {args.out / 'landmarks-68.png'} and {args.out / 'landmarks-19.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
