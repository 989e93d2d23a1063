"""Milliseconds per face against 300-W common-set NME, one point per model and path, from results
that `inference_speed.py` and `mediapipe_peer.py` wrote (nothing is timed here).

    python benchmarks/speed_accuracy_plot.py --speed docs/results/inference_speed_avx2.json \
        [--peer docs/results/mediapipe_peer.json] [--dlib-nme 2.76] --out docs/images/speed_vs_nme_avx2.png

A point needs both numbers measured: network rows take their NME column (`precision_nme.py`),
MediaPipe its common-set NME and per-face time at the same thread count as the speed run, dlib
the NME given with ``--dlib-nme`` (its source stated in the legend). Rows without an NME are left
out and listed. Prints the points as a table too.
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from pathlib import Path


def collect_points(speed: dict, peer: dict | None, dlib_nme: float | None) -> tuple[list[dict], list[str]]:
    """(points, skipped): each point has label, ms (batch 1), nme, family."""
    points, skipped = [], []
    for r in speed["rows"]:
        label = f"{r['config']} {r['backend']} {r['precision']}"
        if r.get("nme") is None or r.get("ms_b1") is None:
            skipped.append(label)
            continue
        points.append({"label": label, "ms": float(r["ms_b1"]), "nme": float(r["nme"]), "family": r["config"]})
    threads = _threads(speed.get("header", ""))
    if peer is not None:
        runs = {s["threads"]: s for s in peer.get("speed", [])}
        s = runs.get(threads) or (runs[min(runs)] if runs else None)
        if s is not None:
            points.append({"label": f"MediaPipe face mesh + 68-point map ({s['threads']} thread(s), other run)",
                           "ms": float(s["per_face_path_ms_median"]), "nme": float(peer["common_set"]["nme"]),
                           "family": "peer"})
    for e in speed.get("extra", []):
        if e["what"].startswith("dlib") and dlib_nme is not None:
            points.append({"label": "dlib predictor (NME on its own detector's boxes)", "ms": float(e["ms_b1"]),
                           "nme": float(dlib_nme), "family": "peer"})
    return points, skipped


def _threads(header: str) -> int | None:
    m = re.search(r"(\d+) threads?", header)
    return int(m.group(1)) if m else None


def plot(points: list[dict], title: str, out: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.8))
    ax = fig.add_subplot()
    colours = {"small": "tab:blue", "tiny": "tab:orange", "peer": "tab:grey"}
    # points of one model lie close together: each gets a number, the legend says which is which
    markers = {"small": "o", "tiny": "s", "peer": "^"}
    for k, p in enumerate(sorted(points, key=lambda q: q["ms"]), 1):
        ax.scatter(p["ms"], p["nme"], color=colours.get(p["family"], "tab:green"), s=30, zorder=3,
                   marker=markers.get(p["family"], "D"),
                   label=f"{k}. {p['label']}: {p['ms']:.1f} ms, {p['nme']:.3f} %")
        ax.annotate(str(k), (p["ms"], p["nme"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xscale("log")
    ax.set_xlabel("ms per face, batch 1 (log scale)")
    ax.set_ylabel("300-W common set NME % (inter-ocular)")
    fig.suptitle(textwrap.fill(title, 150), fontsize=7, x=0.01, ha="left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", required=True, help="JSON written by inference_speed.py --json")
    p.add_argument("--peer", default=None, help="JSON written by mediapipe_peer.py")
    p.add_argument("--dlib-nme", type=float, default=None,
                   help="dlib's common-set NME to plot beside its measured time (state its source)")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    speed = json.loads(Path(args.speed).read_text())
    peer = json.loads(Path(args.peer).read_text()) if args.peer else None
    points, skipped = collect_points(speed, peer, args.dlib_nme)
    if not points:
        raise SystemExit(f"no row of {args.speed} has both a time and an NME (run inference_speed.py without --no-nme)")
    print(f"{'what':<70} {'ms/face b1':>10} {'NME %':>7}")
    for q in sorted(points, key=lambda q: q["ms"]):
        print(f"{q['label']:<70} {q['ms']:>10.2f} {q['nme']:>7.3f}")
    if skipped:
        print("no NME, left out:", ", ".join(skipped))
    plot(points, speed.get("header", ""), Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
