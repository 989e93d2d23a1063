"""Retrain SMT-Net on your own annotated faces, then use the result.

    # fine-tune the shipped model on your faces (68 points), 30 minutes
    python examples/retrain_own_annotations.py --data my_faces.json --init smtnet-300w-small \
        --out runs/mine --max-minutes 30
    # train from scratch, any number of points (a 'tiny' network for a first try)
    python examples/retrain_own_annotations.py --data faces.csv --config tiny --out runs/mine
    python examples/retrain_own_annotations.py --quick     # 2 steps of a tiny model on 6 stand-in faces

Annotations: a JSON list ``[{"image": "img/001.jpg", "landmarks": [[x, y], ...]}, ...]``, a CSV
with rows ``image,x0,y0,x1,y1,...``, 300-W style folders (image + ``.pts``) or dlib XML; image
paths are relative to the annotation file; coordinates are 0-based pixels (docs/CONVENTIONS.md).
With ``--init`` the default recipe is the ``finetune`` preset (sigma 2 from the start, lr 2e-4 after a
short warm-up, EMA): the paper's schedule from trained weights throws the start away (docs/training.md,
"Fine-tuning recipe"). The same from the command line: ``python -m facelandmarks_smt.training train
--data my_faces.json --init smtnet-300w-small --out runs/mine`` (``--help`` lists every option).

``--quick`` writes six stand-in faces (the sample photo moved and turned, its "annotations" the
shipped model's landmarks moved with it: no real labels ship with the project) and trains a random
'tiny' network for two steps. It only shows the pipeline working; its landmarks are meaningless.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent / "astronaut.jpg"


def stand_in_annotations(root: Path, n: int = 6) -> Path:
    """``n`` moved and turned copies of the sample face and a JSON annotation file for them."""
    import cv2

    from facelandmarks_smt import Detector

    face = cv2.imread(str(SAMPLE))[0:256, 96:352]
    det = Detector.from_pretrained("smtnet-300w-small", device="cpu")
    (ref,) = det.detect(cv2.cvtColor(face, cv2.COLOR_BGR2RGB))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        m = cv2.getRotationMatrix2D((128.0, 127.0), rng.uniform(-15, 15), rng.uniform(0.9, 1.1))
        m[:, 2] += rng.uniform(-12, 12, 2)
        cv2.imwrite(str(root / f"face{i}.png"), cv2.warpAffine(face, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
        pts = ref.landmarks @ m[:, :2].T + m[:, 2]
        records.append({"image": f"face{i}.png", "landmarks": np.round(pts, 2).tolist()})
    (root / "annotations.json").write_text(json.dumps(records))
    return root / "annotations.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", help="annotation files or folders (JSON, CSV, .pts folders, dlib XML)")
    p.add_argument("--out", help="run folder (default: TMPDIR/facelandmarks_smt_retrain)")
    p.add_argument("--config", default=None,
                   help="training preset (tiny, small, paper, finetune) or a YAML/TOML/JSON file "
                        "(default: finetune with --init, small without)")
    p.add_argument("--init", help="start from these weights (a pretrained name or .safetensors file): fine-tuning")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of the faces kept for validation")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true", help="2 steps of a tiny model on 6 stand-in faces")
    args = p.parse_args(argv)
    if not args.data and not args.quick:
        p.error("give --data, or --quick")

    import dataclasses

    from facelandmarks_smt import Detector, hub
    from facelandmarks_smt.training.config import load_train_config
    from facelandmarks_smt.datasets import load_datasets, split_dataset
    from facelandmarks_smt.training.trainer import Trainer
    from facelandmarks_smt.weights_io import load_weights

    tmp = Path(tempfile.gettempdir())
    out = Path(args.out) if args.out else tmp / "facelandmarks_smt_retrain"
    if args.quick:
        args.data = [str(stand_in_annotations(tmp / "facelandmarks_smt_stand_in"))]
        args.config, args.max_steps, args.init, args.val_fraction = "tiny", 2, None, 1 / 3
    data = load_datasets(args.data)
    overrides = {"batch_size": 2, "val_batch_size": 2, "num_workers": 0, "log_every": 1} if args.quick else {}
    cfg = load_train_config(args.config or ("finetune" if args.init else "small"), overrides)
    cfg.model = cfg.model.replace(num_landmarks=data.num_landmarks)
    init_weights = None
    if args.init:
        model_config, init_weights, _ = load_weights(hub.resolve(args.init)[0], num_landmarks=data.num_landmarks)
        cfg = dataclasses.replace(cfg, model=model_config)  # the network must be the one the weights fit
    train, val = split_dataset(data, args.val_fraction, seed=cfg.seed)
    print(f"{len(train)} training and {len(val)} validation faces, {data.num_landmarks} points, "
          f"{cfg.model.name} network{' from ' + args.init if args.init else ' from scratch'}")

    trainer = Trainer(cfg, train, val, out, device=args.device, init_weights=init_weights, progress=not args.quick,
                      data_lists={"train": [m["name"] for m in train.metas], "val": [m["name"] for m in val.metas]})
    try:
        summary = trainer.run(max_minutes=args.max_minutes, max_steps=args.max_steps)
    finally:
        trainer.close()
    print(f"stopped ({summary['stop_reason']}) after {summary['step']} steps; "
          f"best validation NME {summary['best_val_nme']:.4f}")

    # the run's best weights load like any other
    det = Detector(out / "best.safetensors", device=args.device)
    image, landmarks, _ = val[0]
    box = np.concatenate([landmarks.min(0), landmarks.max(0)])
    (face,) = det.detect(image, boxes=[box])
    err = float(np.linalg.norm(face.landmarks - landmarks, axis=1).mean())
    print(f"{det}: mean error {err:.1f} px on validation face {val.metas[0]['name']}; weights in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
