"""User-facing errors.

An :class:`EosegError` is a mistake the user can fix (a bad path, option or input file). The CLI prints
its message as one line and exits non-zero, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class EosegError(Exception):
    """A user error: the message says which file or option, what is wrong, and what to do."""


class ConfigError(EosegError):
    """The experiment configuration is invalid."""


class InputError(EosegError):
    """An input file (raster, vector, checkpoint, manifest) is missing or unusable."""


def require_files(
    paths: Iterable[str | os.PathLike[str]], kind: str = "file", given_by: str | None = None
) -> None:
    """The one check and line for input files that do not exist: ``<path> (<given_by>): <kind> does not
    exist; check the path``. ``given_by`` names the option or argument the path came from, when known."""
    for path in paths:
        if not Path(path).exists():
            source = f" ({given_by})" if given_by else ""
            raise InputError(f"{path}{source}: {kind} does not exist; check the path")


def require_models(paths: Iterable[str | os.PathLike[str]]) -> None:
    """The one check and line for model files that are not there: an ``.onnx`` (``eoseg export`` writes it) or an
    eoseg checkpoint. It needs no torch, so a command runs it before the model libraries load (a mistyped path is
    answered in seconds, not after a minute of imports on a busy machine)."""
    for path in map(Path, paths):
        if path.is_file():
            continue
        if path.suffix.lower() == ".onnx":
            raise InputError(f"{path}: ONNX model not found; write one with `eoseg export CKPT --out {path.name}`")
        raise InputError(f"{path}: checkpoint not found; give the path of a .ckpt written by `eoseg train`")
