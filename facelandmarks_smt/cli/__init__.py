"""The ``facelandmarks-smt`` command (also ``python -m facelandmarks_smt``), one module a subcommand:

    facelandmarks-smt detect photo.jpg folder/ clip.mp4 --out results/     (cli/detect.py)
    facelandmarks-smt export --weights W --out model.onnx [--int8 ...]      (cli/export.py)

``facelandmarks-smt COMMAND --help`` lists each command's options. Exit status: 0 when everything
worked, 1 when some input file failed, 2 for a bad command line or bad arguments.
"""

from __future__ import annotations

import argparse
from typing import Callable

from . import detect as _detect
from . import export as _export
from .common import HelpFormatter, supported_kwargs  # noqa: F401  (importable from here, as before)
from .detect import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VIDEO_FOURCC, iter_inputs,  # noqa: F401
                     run as run_detect, scheme_converter)
from .export import add_export_parser, run_export  # noqa: F401

#: name -> (help, add its arguments to a parser, run it with the parsed args)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "detect": (_detect.HELP, _detect.add_arguments, _detect.run),
    "export": (_export.HELP, _export.add_arguments, _export.run),
}


def register_command(name: str, help: str, add: Callable[[argparse.ArgumentParser], None],
                     run: Callable[[argparse.Namespace], int]) -> None:
    """Add a subcommand: ``add`` puts its arguments on its parser, ``run(args)`` returns the exit status."""
    COMMANDS[name] = (help, add, run)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="facelandmarks-smt", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"facelandmarks_smt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][2](args)
