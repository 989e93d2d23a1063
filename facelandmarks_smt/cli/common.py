"""What every command of the ``facelandmarks-smt`` CLI shares: the help formatter, option helpers."""

from __future__ import annotations

import argparse
import inspect
from typing import Any, Callable


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default once: not when its help already says it, and not when there is
    nothing to say (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) or action.default == []:
            return text
        return super()._get_help_string(action)


def supported_kwargs(func: Callable, wanted: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``wanted`` (None values dropped) into the keyword arguments ``func`` accepts and the rest."""
    params = inspect.signature(func).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    ok, missing = {}, {}
    for k, v in wanted.items():
        if v is None:
            continue
        (ok if takes_any or k in params else missing)[k] = v
    return ok, missing
