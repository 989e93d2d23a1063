"""Landmarks of every face in a folder of images, one CSV row per face, with the Python API.

    python examples/folder_to_csv.py photos/ --out landmarks.csv
    python examples/folder_to_csv.py --quick            # a few copies of the sample photo

Columns: file, face, score (mean landmark score), then x0, y0, ..., x67, y67 in image pixels.
A file that cannot be read is reported on stderr and skipped. The command-line tool does the same
and more (videos, JSON, annotated pictures): ``facelandmarks-smt detect photos/ --out results/``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from facelandmarks_smt import Detector

SAMPLE = Path(__file__).resolve().parent / "astronaut.jpg"
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def quick_folder(root: Path) -> Path:
    """Three small pictures made from the sample photo (one mirrored, one in a subfolder)."""
    import cv2

    face = cv2.imread(str(SAMPLE))[0:256, 96:352]
    (root / "sub").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "a.jpg"), face)
    cv2.imwrite(str(root / "b_mirrored.png"), face[:, ::-1])
    cv2.imwrite(str(root / "sub" / "c.jpg"), face)
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="folder of images, searched recursively")
    p.add_argument("--out", help="CSV file to write (default: TMPDIR/landmarks.csv)")
    p.add_argument("--weights", default="smtnet-300w-small", help="pretrained name or .safetensors file")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true", help="run on three copies of the sample photo")
    args = p.parse_args(argv)
    if args.folder is None and not args.quick:
        p.error("give a folder, or --quick")
    tmp = Path(tempfile.mkdtemp(prefix="facelandmarks_smt_"))
    folder = Path(args.folder) if args.folder else quick_folder(tmp / "photos")
    out = Path(args.out) if args.out else tmp / "landmarks.csv"

    det = Detector.from_pretrained(args.weights, device=args.device)
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in EXTENSIONS)
    failed = 0
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "face", "score"] + [f"{a}{i}" for i in range(det.num_landmarks) for a in "xy"])
        for path in tqdm(files, unit="image"):
            try:
                faces = det.detect(path)
            except (ValueError, TypeError, OSError) as e:  # unreadable or corrupt: skip it, say so
                failed += 1
                tqdm.write(f"skipped {path}: {e}", file=sys.stderr)
                continue
            for i, face in enumerate(faces):
                writer.writerow([path.relative_to(folder).as_posix(), i, f"{face.scores.mean():.4f}"]
                                + [f"{v:.2f}" for v in face.landmarks.reshape(-1)])
    print(f"{len(files) - failed} of {len(files)} images read; wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
