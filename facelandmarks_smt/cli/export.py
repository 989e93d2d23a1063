"""``facelandmarks-smt export``: a weights file to an ONNX graph (fp32, or int8 with calibration).

    facelandmarks-smt export --weights smtnet-300w-small --out model.onnx
    facelandmarks-smt export --weights W --out model-int8.onnx --int8 --calibration 300w/afw 300w/helen/trainset
    facelandmarks-smt export --weights W.safetensors --out W.int8-ranges.json --int8-ranges --calibration 300w/afw ...
"""

from __future__ import annotations

import argparse
import json

from ..runtime.export import OPSET
from .common import HelpFormatter

HELP = "export weights to an ONNX graph (fp32, or int8 with calibration)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="a .safetensors file or a registered pretrained name")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX opset")
    p.add_argument("--int8", action="store_true", help="static int8 quantisation (QDQ, per-channel weights)")
    p.add_argument("--calibration", nargs="+", metavar="DIR",
                   help="folders of images + .pts (training data) to calibrate int8 activations on")
    p.add_argument("--num-calibration", type=int, default=None, help="number of calibration crops")
    p.add_argument("--int8-ranges", action="store_true",
                   help="write the int8 calibration ranges (JSON) to --out instead of a graph: shipped beside the "
                        "weights as <name>.int8-ranges.json, they let precision='int8' build its graph without "
                        "calibration data (needs --calibration)")


def run(args: argparse.Namespace) -> int:
    from ..runtime.graphs import export_weights, write_int8_ranges

    if args.int8_ranges:
        if not args.calibration:
            raise ValueError("--int8-ranges needs --calibration folders of annotated training faces")
        out = write_int8_ranges(args.weights, args.calibration, args.out)
        print(json.dumps({"out": str(out), "kind": "int8 ranges"}, indent=2))
        return 0

    summary = export_weights(args.weights, args.out, opset=args.opset, int8=args.int8, calibration=args.calibration,
                             num_calibration=args.num_calibration)
    print(json.dumps(summary, indent=2))
    return 0


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``export --weights W --out model.onnx [--opset N] [--int8 --calibration DIR...]``."""
    from ..runtime.graphs import export_weights

    p = subparsers.add_parser("export", help=HELP, description=export_weights.__doc__, formatter_class=HelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


run_export = run


def main(argv: list[str] | None = None) -> int:
    """``python -m facelandmarks_smt.export --weights W --out model.onnx``."""
    import sys

    parser = argparse.ArgumentParser(prog="python -m facelandmarks_smt.export", formatter_class=HelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv if argv is not None else sys.argv[1:]))
