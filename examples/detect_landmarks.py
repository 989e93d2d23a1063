"""Find facial landmarks in one image and write an annotated picture.

    python examples/detect_landmarks.py examples/astronaut.jpg
    python examples/detect_landmarks.py photo.jpg --out photo_landmarks.png --weights my_model.safetensors

The picture shows each face's box, thin contour lines per facial part (jaw, brows, nose, eyes,
lips), a small dot per landmark and a magnified inset of the largest face. Without ``--out`` it is
written to the system's temporary folder (the path is printed), so running the example leaves no
file in your checkout. ``--quick`` runs on the bundled sample photo (used by the tests).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2

from facelandmarks_smt import Detector
from facelandmarks_smt.drawing import draw_landmarks
from facelandmarks_smt.images import load_image

SAMPLE = Path(__file__).resolve().parent / "astronaut.jpg"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="input image (jpg/png); --quick uses the sample photo")
    p.add_argument("--out", help="annotated picture to write (default: TMPDIR/<image>_landmarks.png)")
    p.add_argument("--weights", default="smtnet-300w-small",
                   help="a registered pretrained name or a .safetensors weights file")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--box", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="landmark box of the face (skips the face detector)")
    p.add_argument("--quick", action="store_true", help="run on examples/astronaut.jpg")
    args = p.parse_args(argv)
    if args.image is None and not args.quick:
        p.error("give an image, or --quick for the sample photo")
    path = Path(args.image) if args.image else SAMPLE
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / f"{path.stem}_landmarks.png"

    det = Detector.from_pretrained(args.weights, device=args.device)
    image = load_image(path)
    faces = det.detect(image, boxes=[args.box] if args.box else None)
    print(f"{det}: {len(faces)} face(s) in {path}")
    for i, f in enumerate(faces):
        box = ", ".join(f"{v:.1f}" for v in f.box)
        det_score = "given box" if f.detection_score is None else f"face score {f.detection_score:.2f}"
        print(f"  face {i}: box [{box}], {det_score}, mean landmark score {f.scores.mean():.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(draw_landmarks(image, faces), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
