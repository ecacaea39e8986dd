"""User-facing errors.

A `UserError` is a mistake the user can fix (bad option, missing data, a run folder that is
already taken).  The CLI prints its message on one line and exits with code 2; it never shows a
traceback for one.  Messages say what was wrong, with the value, and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class UserError(Exception):
    """A mistake in the user's input, reported as one line and exit code 2."""

    exit_code = 2


def check(ok: bool, key: str, value: Any, advice: str) -> None:
    """Raise ``invalid value VALUE for KEY: ADVICE`` as a `UserError` unless ``ok``.

    It lives here, in the lowest layer, so that configs of every layer (families included)
    validate their settings with the same one-line message."""
    if not ok:
        raise UserError(f"invalid value {value!r} for {key}: {advice}")


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' naming the closest valid choices, or a list of all."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if close:
        return f" (did you mean: {', '.join(close)}?)"
    if len(choices) <= 12:
        return f" (choose from: {', '.join(choices)})"
    return ""
