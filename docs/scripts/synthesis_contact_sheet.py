"""Contact sheet of synthesized large-pose faces, to check them by eye (docs/images/synthesized_poses.jpg).

    python docs/scripts/synthesis_contact_sheet.py runs/synth/train --out docs/images/synthesized_poses.jpg

One row per source face: the original with its 300-W points, then its turned views (yaw and
pitch in the title strip), each cropped around its landmarks. Jaw points are red, the rest green,
the jaw line drawn, so a jaw that does not follow the visible outline is easy to see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from facelandmarks_smt.datasets import load_image, read_pts


def tile(img: np.ndarray, pts: np.ndarray, title: str, size: int = 220) -> np.ndarray:
    lo, hi = pts.min(0), pts.max(0)
    c, s = (lo + hi) / 2, 1.5 * float(max(hi - lo))
    m = np.float32([[size / s, 0, size / 2 - c[0] * size / s], [0, size / s, size / 2 - c[1] * size / s]])
    out = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_CONSTANT)
    p = pts @ m[:, :2].T + m[:, 2]
    cv2.polylines(out, [np.round(p[:17] * 4).astype(np.int32)], False, (255, 255, 0), 1, cv2.LINE_AA, 2)
    for k, (x, y) in enumerate(p):
        cv2.circle(out, (int(round(x * 4)), int(round(y * 4))), 8, (255, 40, 40) if k < 17 else (40, 255, 40),
                   -1, cv2.LINE_AA, 2)
    cv2.rectangle(out, (0, 0), (size, 18), (0, 0, 0), -1)
    cv2.putText(out, title, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="a synthesize-poses output folder (with synthesis*.jsonl)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    folder = Path(a.folder)
    recs = [json.loads(line) for f in sorted(folder.glob("synthesis*.jsonl")) for line in f.read_text().splitlines()]
    recs = [r for r in recs if r.get("views")]
    rng = np.random.default_rng(a.seed)
    rows = []
    for r in rng.choice(recs, size=min(a.rows, len(recs)), replace=False):
        src = Path(r["source"])
        yaw0 = r["yaw_pitch_roll"][0]
        row = [tile(load_image(src), read_pts(src.with_suffix(".pts")), f"original, yaw {yaw0:+.0f}")]
        for v in r["views"]:
            f = folder / v["file"]
            row.append(tile(load_image(f), read_pts(f.with_suffix(".pts")),
                            f"yaw {yaw0 + v['yaw']:+.0f} pitch {v['pitch']:+.0f}"))
        rows.append(np.concatenate(row, 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    sheet = np.concatenate(rows, 0)
    cv2.imwrite(a.out, sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {a.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
