"""Accuracy where faces are hard, per part: the 300-W common set (reporting), and the validation
faces (selection) as they are, turned to large poses (synthesize-poses) and degraded per kind
(degrade). One JSON per run and a markdown table on stdout.

    python benchmarks/robustness_eval.py --weights runs/v6_mix1/best.safetensors smtnet-300w-small \
        --data-root ../shared/data/landmarks68/300w --val-list docs/results/smtnet-300w-small-v5/data_lists.json \
        --synth-val runs/synth/val_80 --degraded runs/degraded_val --out docs/results/robustness.json

Ground-truth landmark boxes everywhere (the paper's protocol): this measures the landmark model,
not the face detector. Inter-ocular NME in %, FR@8 in %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from facelandmarks_smt import Detector
from facelandmarks_smt.datasets import load_datasets
from facelandmarks_smt.training.evaluate import evaluate_detector
from facelandmarks_smt.training.metrics import summarise_errors


def _score(det, ds, name):
    rep = evaluate_detector(det, ds, boxes="gt", progress=False, title=name)
    return np.array([np.nan if e is None else e for e in rep["errors"]], float)


def _summary(e):
    e = e[np.isfinite(e)]
    s = summarise_errors(e)
    return {"nme": round(s["nme"], 3), "fr8": round(s["fr8"], 2), "faces": s["faces"]}


def _synth_yaw(folder: Path) -> dict[str, float]:
    yaw = {}
    for f in folder.glob("synthesis*.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            for v in r.get("views", []):
                yaw[Path(v["file"]).stem] = r["yaw_pitch_roll"][0] + v["yaw"]
    return yaw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="+", required=True, help="weights files or registered names")
    ap.add_argument("--data-root", required=True, help="the 300-W folder (afw, helen/, lfpw/)")
    ap.add_argument("--val-list", required=True, help="a run's data_lists.json: its 'val' names are the real part")
    ap.add_argument("--synth-val", help="synthesize-poses output of the validation faces (symlinks are fine)")
    ap.add_argument("--degraded", help="degrade output of the validation faces (every kind)")
    ap.add_argument("--degraded-hard", help="a second degrade output, e.g. heavier copies (degrade --severity 1 2)")
    ap.add_argument("--no-common", action="store_true", help="skip the common set (when it is measured elsewhere)")
    ap.add_argument("--flip-test", action="store_true")
    ap.add_argument("--out", required=True, help="JSON to write")
    a = ap.parse_args()

    root = Path(a.data_root)
    common = load_datasets([root / "helen/testset", root / "lfpw/testset"])
    train = load_datasets([root / "afw", root / "helen/trainset", root / "lfpw/trainset"])
    val_names = set(json.loads(Path(a.val_list).read_text())["val"])
    real_val = train.subset([i for i, m in enumerate(train.metas) if m["name"] in val_names])
    parts = {"val_real": real_val} if a.no_common else {"common": common, "val_real": real_val}
    if a.synth_val:
        parts["val_synth"] = load_datasets([a.synth_val])
    if a.degraded:
        parts["val_degraded"] = load_datasets([a.degraded])
    if a.degraded_hard:
        parts["val_degraded_hard"] = load_datasets([a.degraded_hard])
    yaw: dict[str, float] = {}
    if a.synth_val:  # the views' poses are in synthesis*.jsonl beside the real files (links are followed)
        for folder in {Path(os.path.realpath(p)).parent for p, _ in parts["val_synth"].items}:
            yaw.update(_synth_yaw(folder))

    results = {"machine": os.uname().machine, "flip_test": a.flip_test, "models": {}}
    for w in a.weights:
        # torch fp32, not "auto": the same numbers on any CPU
        det = Detector.from_pretrained(w, flip_test=a.flip_test, backend="torch", precision="fp32")
        r: dict = {}
        t = time.monotonic()
        val_errors = []
        for name, ds in parts.items():
            e = _score(det, ds, name)
            r[name] = _summary(e)
            if name.startswith("val_"):
                val_errors.append(e)
            if name == "val_synth":
                y = np.array([abs(yaw.get(m["name"], np.nan)) for m in ds.metas])
                for lo, hi in ((0, 40), (40, 60), (60, 80), (80, 181)):
                    sel = (y >= lo) & (y < hi)
                    if sel.any():
                        r[f"val_synth_yaw{lo}-{min(hi, 90)}"] = _summary(e[sel])
            if name in ("val_degraded", "val_degraded_hard"):
                kinds = np.array([m["name"].rsplit("_", 1)[1] for m in ds.metas])
                for k in sorted(set(kinds)):
                    r[f"{name}_{k}"] = _summary(e[kinds == k])
        # every validation face at once: what a training run's selection ("all") scores
        r["val_all"] = _summary(np.concatenate(val_errors))
        r["seconds"] = round(time.monotonic() - t, 1)
        results["models"][str(w)] = r
        print(f"{w}: done in {r['seconds']} s", file=sys.stderr)
    Path(a.out).write_text(json.dumps(results, indent=1))
    names = list(results["models"])
    rows = list(next(iter(results["models"].values())).keys())
    print("| part | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for row in rows:
        if row == "seconds":
            continue
        cells = []
        for n in names:
            s = results["models"][n].get(row)
            cells.append(f"{s['nme']:.2f} / {s['fr8']:.1f} % ({s['faces']})" if s else "-")
        print(f"| {row} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
