"""The studio's form fields, checked on the server with the CLI's one-line messages.

Each reader takes the submitted fields (strings from a form, or JSON values) and names the
CLI option it stands for, so a bad value reads as it would at the command line
(``argument --n: must be at least 1, got 0``).  The studio's own limits (counts a request may
ask for) say the limit and the CLI command that goes beyond it."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..tools.latent import int_ranges

#: the most images, frames, seeds a row or column, and caption images one request makes
MAX_IMAGES, MAX_FRAMES, MAX_MIX_SEEDS, MAX_TEXT_IMAGES = 64, 32, 8, 16
#: numpy seeds take 32 bits (the CLI's limit)
SEED_LIMIT = 2**32
#: the longest text a field may hold (a caption, a seed list)
MAX_FIELD_CHARS = 500


def _raw(fields: Mapping[str, Any], key: str) -> Any:
    value = fields.get(key)
    if isinstance(value, str):
        value = value.strip()
        if len(value) > MAX_FIELD_CHARS:
            raise UserError(f"{key}: at most {MAX_FIELD_CHARS} characters, got {len(value)}")
    return None if value in (None, "") else value


def whole(fields: Mapping[str, Any], key: str, option: str, default: int | None = None) -> Any:
    """A whole number, or ``default`` when the field is empty."""
    value = _raw(fields, key)
    if value is None:
        return default
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise UserError(f"argument {option}: expected a whole number, got {str(value)!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"argument {option}: expected a whole number, got {str(value)!r}") from None


def count(
    fields: Mapping[str, Any], key: str, option: str, default: int, cap: int, cli: str
) -> int:
    """A count of at least 1 and at most ``cap`` (the studio's bound; ``cli`` goes further)."""
    value = whole(fields, key, option, default)
    if value < 1:
        raise UserError(f"argument {option}: must be at least 1, got {value}")
    if value > cap:
        raise UserError(
            f"{option} {value} is more than the studio makes at once; use {option} {cap} or "
            f"fewer (or '{cli}', which makes any number)"
        )
    return value


def seed(fields: Mapping[str, Any], key: str = "seed", option: str = "--seed") -> int:
    value = whole(fields, key, option, 0)
    if not 0 <= value < SEED_LIMIT:
        raise UserError(f"argument {option}: use a seed from 0 to 2^32 - 1, got {value}")
    return value


def real(fields: Mapping[str, Any], key: str, option: str) -> float | None:
    """A finite number, or None when the field is empty (argparse's wording for a bad one)."""
    value = _raw(fields, key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"argument {option}: invalid float value: {str(value)!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise UserError(f"argument {option}: invalid float value: {str(value)!r}")
    return number


def choice(
    fields: Mapping[str, Any], key: str, option: str, choices: tuple[str, ...], default: Any
) -> Any:
    value = _raw(fields, key)
    if value is None:
        return default
    if value not in choices:
        raise UserError(_argparse_choice_error(option, str(value), choices))
    return value


def _argparse_choice_error(option: str, value: str, choices: tuple[str, ...]) -> str:
    """argparse's own line for a value outside ``choices`` (its quoting differs between
    Python versions, and the CLI prints whichever this one writes)."""
    parser = argparse.ArgumentParser(add_help=False)
    action = parser.add_argument(option, choices=choices)
    try:
        parser._check_value(action, value)  # the check parse_args makes
    except argparse.ArgumentError as err:
        return str(err)
    return f"argument {option}: invalid choice: {value!r}"  # pragma: no cover


def text(fields: Mapping[str, Any], key: str) -> str | None:
    value = _raw(fields, key)
    if value is not None and not isinstance(value, str):
        raise UserError(f"{key}: expected text, got {value!r}")
    return value


def seed_list(fields: Mapping[str, Any], key: str, option: str, cap: int) -> str:
    """A list of seeds as the CLI writes it (``1,2,3`` or ``0-4``) of at most ``cap`` seeds,
    counted before any list is built (``0-4000000000`` is refused, not expanded)."""
    value = text(fields, key)
    if value is None:
        raise UserError(f"give {option}, e.g. {option} 1,2,3")
    total = 0
    for first, last in int_ranges(value, option):
        if last >= SEED_LIMIT:
            raise UserError(f"{option} {value!r}: use seeds from 0 to 2^32 - 1")
        total += last - first + 1
    if total > cap:
        raise UserError(
            f"{option} {value!r} names {total:,} seeds; the studio takes at most {cap} here"
        )
    return value
