"""Short, equal-time training runs that compare training choices on the 300-W training folders.

    python benchmarks/ablation.py --data DIR [DIR ...] --out runs/ablation --minutes 5 \
        --variant bice_softmax heatmap_loss=bice_softmax --variant uce heatmap_loss=uce ...

Every variant trains the same config (``--config``) for the same wall-clock budget on the same
training/validation split (validation carved from the training folders, never a test set), one
after the other, and the table of best validation NMEs is printed and written to
``OUT/ablation.json`` and ``OUT/ablation.md``. Equal time, not equal epochs, is the budget that
matters on a CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", default="tiny")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--common", nargs="*", default=[], help="KEY=VALUE overrides for every variant")
    p.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "KEY=VALUE"),
                   help="a name followed by its overrides")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, *overrides in args.variant:
        run_dir = out / name
        cmd = [sys.executable, "-m", "facelandmarks_smt.training", "train", "--data", *args.data,
               "--config", args.config, "--out", str(run_dir), "--max-minutes", str(args.minutes),
               "--cache", str(out / "cache"), "--no-progress", "--set", *args.common, *overrides]
        print(f"== {name}: {' '.join(overrides)}", flush=True)
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        row = {"name": name, "overrides": overrides, "wall_min": round((time.time() - t) / 60, 2)}
        if r.returncode != 0:
            row["error"] = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
        else:
            s = json.loads(r.stdout[r.stdout.index("{"):])
            log = [json.loads(line) for line in open(run_dir / "log.jsonl")]
            best = min(log, key=lambda rec: rec["val_nme"])
            row.update({"best_val_nme": round(best["val_nme"], 3),
                        "best_val_nme_argmax": round(best["val_nme_argmax"], 3),
                        "epochs": round(log[-1]["epoch_float"], 2), "images_per_s": round(s["images_per_second"], 2)})
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"machine": platform.processor() or platform.machine(), "config": args.config, "minutes": args.minutes,
            "data": args.data, "common": args.common, "rows": rows}
    (out / "ablation.json").write_text(json.dumps(info, indent=2))
    lines = [f"| variant | overrides | best val NME % | argmax-only % | epochs | images/s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {' '.join(r['overrides'])} | {r.get('best_val_nme', r.get('error'))} | "
                     f"{r.get('best_val_nme_argmax', '')} | {r.get('epochs', '')} | {r.get('images_per_s', '')} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
