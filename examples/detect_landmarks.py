"""Find facial landmarks in an image and write an annotated PNG.

    python examples/detect_landmarks.py examples/astronaut.jpg --out astronaut_landmarks.png
    python examples/detect_landmarks.py photo.jpg --weights my_model.safetensors

Without ``--weights`` it uses the first installed pretrained weights; when none are installed it
falls back to a RANDOM-INIT model and says so: its landmarks are meaningless, but the run shows the
whole pipeline (face detection, cropping, network, decoding) working.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.images import load_image


def draw(image: np.ndarray, faces) -> np.ndarray:
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    r = max(1, round(max(image.shape[:2]) / 300))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 160, 0), r)
        for (x, y), s in zip(face.landmarks, face.scores):
            colour = (0, int(255 * s), int(255 * (1 - s)))  # red = unsure, green = confident
            cv2.circle(out, (int(round(x)), int(round(y))), r + 1, colour, -1, cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="input image (jpg/png)")
    p.add_argument("--out", default="landmarks.png", help="annotated PNG to write")
    p.add_argument("--weights", help="a .safetensors weights file or a registered pretrained name")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--box", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="landmark box of the face (skips the face detector)")
    args = p.parse_args(argv)

    if args.weights:
        det = Detector.from_pretrained(args.weights, device=args.device)
    elif hub.available():
        det = Detector.from_pretrained(hub.available()[0], device=args.device)
    else:
        print("WARNING: no pretrained weights are installed; using a RANDOM-INIT 'small' model. "
              "Its landmarks are meaningless (pass --weights FILE to use trained weights).", file=sys.stderr)
        det = Detector.from_config("small", device=args.device)

    image = load_image(args.image)
    faces = det.detect(image, boxes=[args.box] if args.box else None)
    print(f"{det}: {len(faces)} face(s) in {args.image}")
    for i, f in enumerate(faces):
        print(f"  face {i}: box {np.round(f.box, 1).tolist()}, mean landmark score {f.scores.mean():.3f}")
    cv2.imwrite(args.out, draw(image, faces))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
