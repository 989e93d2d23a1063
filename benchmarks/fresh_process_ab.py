"""The A/B driver of the benchmarks that compare settings which are process-wide (torch's thread
pool, monkeypatched library paths): each arm runs in a fresh process (``script --arm ...``, which
prints one JSON row last), the arms alternate in order over the rounds, and the table gives each
round's value and their median, so this VM's drift shows instead of hiding in one number."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_arms(script: str | Path, arms: list[tuple], rounds: int, extra_args: list[str]) -> list[dict]:
    """Rows of ``script --arm *arm *extra_args`` for every arm, ``rounds`` times, alternating order."""
    results = []
    for r in range(rounds):
        for arm in (arms if r % 2 == 0 else arms[::-1]):
            out = subprocess.run([sys.executable, str(script), "--arm", *map(str, arm), *extra_args],
                                 cwd=Path(script).resolve().parent, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["round"] = r
            results.append(row)
            print(f"round {r}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("round", "check")),
                  flush=True)
    return results


def print_table(results: list[dict], arms: list[tuple], keys: tuple[str, ...], columns: list[tuple[str, str]]) -> None:
    """Markdown table: one row per arm (``keys`` name the arm's fields), for each ``(field, title)``
    of ``columns`` every round's value and the median."""
    print("| " + " | ".join(keys) + " | " + " | ".join(f"{title} (each round)" for _, title in columns) + " |")
    print("|" + "---|" * (len(keys) + len(columns)))
    for arm in arms:
        rows = [r for r in results if tuple(str(r[k]) for k in keys) == tuple(map(str, arm))]
        cells = [" / ".join(f"{r[field]:.1f}" for r in rows) + f" (median {statistics.median(r[field] for r in rows):.1f})"
                 for field, _ in columns]
        print("| " + " | ".join(map(str, arm)) + " | " + " | ".join(cells) + " |")


def ab_arguments(doc: str, arm_metavar: tuple[str, ...], rounds: int) -> argparse.ArgumentParser:
    """The options both A/B scripts take (``--arm`` is the hidden one a fresh process is called with)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument("--threads", type=int, default=2, help="the detector's threads")
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--json", default=None)
    p.add_argument("--arm", nargs=len(arm_metavar), metavar=arm_metavar, help=argparse.SUPPRESS)
    return p


def write_json(path: str | Path | None, header: str, results: list[dict]) -> None:
    """The rows with the machine line, the command and the date (nothing when ``path`` is None)."""
    if path:
        Path(path).write_text(json.dumps({"machine": header, "command": " ".join(sys.argv),
                                          "date": time.strftime("%Y-%m-%d"), "rows": results}, indent=1))
