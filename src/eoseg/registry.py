"""Name lookups with one error shape for every registry (architectures, encoders, losses, tasks, presets,
augmentations): ``<option>=<name> is not a known <what>; did you mean <closest>? valid: <names>``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from eoseg.errors import ConfigError

T = TypeVar("T")


def closest(word: str, choices: Iterable[str], key: Callable[[str], str] | None = None) -> str | None:
    """The choice closest to ``word`` (difflib ratio >= 0.6, after ``key`` normalises both), else None."""
    choices = list(choices)
    norm = key or (lambda s: s)
    by_key = {norm(c): c for c in choices}
    close = difflib.get_close_matches(norm(word), list(by_key), n=1, cutoff=0.6)
    return by_key[close[0]] if close else None


def did_you_mean(word: str, choices: Iterable[str], key: Callable[[str], str] | None = None) -> str:
    """``"did you mean 'x'? "`` for the closest choice, or ``""`` when none is close."""
    match = closest(word, choices, key)
    return f"did you mean {match!r}? " if match is not None else ""


def lookup(
    table: Mapping[str, T],
    name: str,
    *,
    option: str,
    what: str,
    key: Callable[[str], str] | None = None,
    valid: str | None = None,
) -> T:
    """``table[name]`` (matched after ``key`` normalises names); otherwise a one-line :class:`ConfigError`.

    ``option`` is the config key or argument that named it; ``valid`` replaces the list of valid names
    when that list is too long to print.
    """
    norm = key or (lambda s: s)
    by_key = {norm(n): v for n, v in table.items()}
    if norm(name) in by_key:
        return by_key[norm(name)]
    listing = valid if valid is not None else f"valid: {', '.join(table)}"
    raise ConfigError(f"{option}={name!r} is not a known {what}; {did_you_mean(name, table, key)}{listing}")
