"""Time and memory of the first call on the default path: construction + one `detect` on a given box.

    cd benchmarks && python first_call.py [--configs tiny small] [--json ../docs/results/first_call.json]

Each measurement runs in a fresh process, first on an empty graph cache (the export, the int8 build
from the shipped ranges or a calibration, OpenVINO's compile: what a user's first call pays) and
then again on the filled cache. Peak RSS is the process's ``ru_maxrss`` before the detector is made
and after its first `detect` (issue 16: <= 10 s and <= 1 GB extra). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(config: str) -> dict:
    import resource
    import time

    t0 = time.perf_counter()
    from facelandmarks_smt import Detector

    from inference_speed import frame_640x480

    frame, box = frame_640x480()
    imported = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t1 = time.perf_counter()
    det = Detector.from_pretrained(f"smtnet-300w-{config}", device="cpu", threads=2)
    det.detect(frame, boxes=[box])
    seconds = time.perf_counter() - t1
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"config": config, "backend": det.backend, "precision": det.precision, "import_s": round(imported, 2),
            "first_call_s": round(seconds, 2), "rss_before_mb": round(rss0 / 1024), "rss_after_mb": round(rss1 / 1024)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument("--json", default=None)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    from machine import cpu_name

    rows = []
    for config in args.configs:
        with tempfile.TemporaryDirectory() as cache:
            for state in ("empty cache", "filled cache"):
                env = {**__import__("os").environ, "FACELANDMARKS_SMT_CACHE": cache}
                out = subprocess.run([sys.executable, __file__, "--one", config], cwd=HERE, env=env, check=True,
                                     capture_output=True, text=True)
                row = {**json.loads(out.stdout.strip().splitlines()[-1]), "cache": state}
                rows.append(row)
    header = f"machine: {cpu_name()}, 2 threads, default path (backend and precision 'auto')"
    print(header + "\n")
    print("| config | path | graph cache | first call (construction + detect), s | peak RSS before -> after, MB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['backend']} {r['precision']} | {r['cache']} | {r['first_call_s']:.1f} | "
              f"{r['rss_before_mb']} -> {r['rss_after_mb']} (+{r['rss_after_mb'] - r['rss_before_mb']}) |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": header, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
