"""Every command line shown in the README, docs/ and the model cards names a real subcommand and
only options that subcommand has (so the docs cannot drift from the parsers)."""

import re
from pathlib import Path

import pytest

from facelandmarks_smt.cli import build_parser as detect_parser
from facelandmarks_smt.training.cli import build_parser as training_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "weights").glob("*.md"))]
PROGRAMS = {
    "python -m facelandmarks_smt.training": training_parser,
    "facelandmarks-smt-train": training_parser,
    "python -m facelandmarks_smt": detect_parser,
    "facelandmarks-smt": detect_parser,
}
CMD = re.compile(r"(python -m facelandmarks_smt\.training|facelandmarks-smt-train|python -m facelandmarks_smt(?![.\w])|"
                 r"facelandmarks-smt(?![-\w]))\s+([a-z][a-z-]*)(.*)")


def _commands():
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):  # continued shell lines
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            for m in CMD.finditer(line):
                yield doc.relative_to(REPO).as_posix(), m.group(1), m.group(2), m.group(3)
            i += 1


def _subcommands(parser):
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


COMMANDS = list(_commands())


def test_the_docs_show_commands():
    assert len(COMMANDS) > 15
    assert {c[2] for c in COMMANDS} >= {"train", "evaluate", "detect", "synthesize-poses", "degrade"}


@pytest.mark.parametrize("doc,prog,cmd,rest", COMMANDS, ids=[f"{c[0]}:{c[2]}:{k}" for k, c in enumerate(COMMANDS)])
def test_documented_command_exists_with_its_options(doc, prog, cmd, rest):
    subs = _subcommands(PROGRAMS[prog]())
    if cmd not in subs:
        # prose like "facelandmarks-smt on a folder" is not a command line
        if prog.startswith("python -m") or cmd in ("detect", "export", "train", "evaluate"):
            pytest.fail(f"{doc}: `{prog} {cmd}` is not a command (commands: {', '.join(subs)})")
        pytest.skip("prose, not a command")
    known = set(subs[cmd]._option_string_actions)
    rest = rest.split("`")[0].split("#")[0]  # the end of an inline code span or a shell comment
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest))
    unknown = sorted(used - known)
    assert not unknown, f"{doc}: `{prog} {cmd}` has no option {', '.join(unknown)}"
