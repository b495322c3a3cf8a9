"""User-facing errors.

An :class:`EosegError` is a mistake the user can fix (a bad path, option or input file). The CLI prints
its message as one line and exits non-zero, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations


class EosegError(Exception):
    """A user error: the message says which file or option, what is wrong, and what to do."""


class ConfigError(EosegError):
    """The experiment configuration is invalid."""


class InputError(EosegError):
    """An input file (raster, vector, checkpoint, manifest) is missing or unusable."""
