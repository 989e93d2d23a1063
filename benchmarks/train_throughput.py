"""Training throughput (images/s) of each model config, fp32 vs bf16 autocast, channels_last or not.

    python benchmarks/train_throughput.py [--configs tiny small paper] [--steps 6] [--batch 16] [--json out.json]

One training step = forward of both stacks, BICE + coordinate losses, backward, Adam step, on
random crops and landmarks (data loading excluded: the face cache keeps it off the critical path).
Reports the median step time after warm-up steps; ratios are against fp32 NCHW of the same config
measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch

from facelandmarks_smt.config import get_config
from facelandmarks_smt.models import SMTNet
from facelandmarks_smt.training.losses import coord_loss, get_heatmap_loss
from facelandmarks_smt.training.targets import gaussian_heatmaps

from machine import cpu_name  # benchmarks/machine.py (scripts run from this folder)


def measure(config: str, batch: int, steps: int, warmup: int, bf16: bool, channels_last: bool) -> float:
    torch.manual_seed(0)
    cfg = get_config(config)
    model = SMTNet(cfg).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    loss_fn = get_heatmap_loss("bice_softmax")
    x = torch.randn(batch, 3, cfg.input_size, cfg.input_size).contiguous(memory_format=fmt)
    pts = torch.rand(batch, cfg.num_landmarks, 2) * (cfg.heatmap_size - 1)
    target = gaussian_heatmaps(pts, cfg.heatmap_size, 2.0)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        with ctx():
            outs = model(x)
        loss = sum(loss_fn(h, target) + coord_loss(r, h, pts) for h, r in outs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"batch {args.batch}, median of {args.steps} steps after {args.warmup} warm-up steps\n")
    rows = []
    header = f"{'config':8} {'precision':10} {'layout':14} {'images/s':>9} {'vs fp32 NCHW':>13}"
    print(header)
    print("-" * len(header))
    for name in args.configs:
        base = None
        for bf16, cl in ((False, False), (False, True), (True, False), (True, True)):
            ips = measure(name, args.batch, args.steps, args.warmup, bf16, cl)
            base = base or ips
            row = {"config": name, "precision": "bf16" if bf16 else "fp32",
                   "layout": "channels_last" if cl else "NCHW", "images_per_s": round(ips, 2),
                   "ratio": round(ips / base, 2)}
            rows.append(row)
            print(f"{name:8} {row['precision']:10} {row['layout']:14} {ips:9.2f} {ips / base:12.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "batch": args.batch, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
