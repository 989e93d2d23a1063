"""Parameter counts and FLOPs of each model config (one 256x256 face, inference).

    python benchmarks/model_stats.py [--configs tiny small paper] [--landmarks 68 19]

FLOPs are counted by torch.utils.flop_counter (convolutions and matrix products, 2 FLOPs per
multiply-add); BatchNorm, ReLU, pooling and upsampling are not counted (they are a few percent).
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from facelandmarks_smt.config import get_config
from facelandmarks_smt.models import SMTNet, count_parameters


def count_gflops(model: torch.nn.Module, input_size: int = 256) -> float:
    """GFLOPs of one face through ``model`` (inference, 2 FLOPs per multiply-add)."""
    x = torch.zeros(1, 3, input_size, input_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--landmarks", nargs="+", type=int, default=[68, 19])
    args = p.parse_args()
    print(f"{'config':8} {'L':>3} {'width/inner':>12} {'parameters':>12} {'GFLOPs':>8}")
    for name in args.configs:
        for L in args.landmarks:
            cfg = get_config(name, num_landmarks=L)
            model = SMTNet(cfg).eval()
            print(f"{name:8} {L:3d} {f'{cfg.width}/{cfg.inner_width}':>12} {count_parameters(model):12,d} "
                  f"{count_gflops(model, cfg.input_size):8.2f}", flush=True)


if __name__ == "__main__":
    main()
