"""How every command ends: one printer for errors and warnings, signals, and cleanup after a failure.

- Errors and warnings are printed as plain text (never rich markup, so ``[v2]`` or ``[/`` in a path
  survive), one line each, without Python source lines.
- SIGINT and SIGTERM raise :class:`KeyboardInterrupt` in the main thread (inside a loop that checks for it,
  such as the predictor's, at the loop's next safe point, saying so at once: :mod:`eoseg.stopping`), so every
  ``finally`` and ``__exit__`` runs: temporary files are removed, finished outputs stay. The command then prints
  ``interrupted; finished outputs are kept`` and exits 130 (SIGINT) or 143 (SIGTERM).
- Folders a failed command created and left empty are removed again.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from rich.text import Text

from eoseg.progress import console
from eoseg.stopping import announce, request_stop, reset

INTERRUPTED = "interrupted; finished outputs are kept"
STOPPING = "stopping after the current batch; a second Ctrl+C (or SIGTERM) stops at once"
OUT_OPTIONS = ("--out", "-o", "--error-maps")
OUT_OVERRIDES = ("data.root=", "train.out=")


def one_line(message: object) -> str:
    """``message`` as a single line: line breaks and runs of spaces become one space."""
    return " ".join(str(message).split())


def print_error(message: object) -> None:
    """``error: MESSAGE`` on stderr, literally (no markup interpretation)."""
    console.print(Text.assemble(("error: ", "bold red"), one_line(message)), highlight=False, soft_wrap=True)


def print_warning(message: object) -> None:
    """``warning: MESSAGE`` on stderr, literally and as one line."""
    console.print(Text.assemble(("warning: ", "yellow"), one_line(message)), highlight=False, soft_wrap=True)


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    print_warning(message)


@contextmanager
def warning_printer() -> Iterator[None]:
    """Route every Python warning (eoseg's, GDAL's, Lightning's) through :func:`print_warning`."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield


class Interrupted:
    """Signal handlers for SIGINT and SIGTERM that raise :class:`KeyboardInterrupt` and remember the signal."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and request_stop():  # a loop raises it at its next safe point (eoseg.stopping); a second signal now
            announce(STOPPING)
            return
        raise KeyboardInterrupt

    def install(self) -> None:
        reset()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
                return

    def restore(self) -> None:
        reset()  # a request belongs to its command: a later library call in this process starts without it
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


def said_where_it_stopped(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt behind ``exc`` (its cause chain) that names its signal (``signum``) and says where it stopped:
    :class:`~eoseg.training.interrupt.TrainingInterrupted` of train and self-train, whose handler took the signal
    instead of :class:`Interrupted`'s; ``None`` when there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt) and isinstance(getattr(current, "signum", None), int):
            return current
        current = current.__cause__ or current.__context__
    return None


def output_folders(args: Sequence[str]) -> list[Path]:
    """The folders or files a command was told to write (``--out``, ``data.root=``, ``train.out=``)."""
    paths: list[Path] = []
    for i, arg in enumerate(args):
        if arg in OUT_OPTIONS and i + 1 < len(args):
            paths.append(Path(args[i + 1]))
        for prefix in (*(f"{o}=" for o in OUT_OPTIONS if o.startswith("--")), *OUT_OVERRIDES):
            if arg.startswith(prefix) and len(arg) > len(prefix):
                paths.append(Path(arg[len(prefix):]))
    return paths


def missing_folders(paths: Sequence[Path]) -> list[Path]:
    """Each path and its ancestors that do not exist yet, deepest first (what the command may create)."""
    missing: list[Path] = []
    for path in paths:
        current = Path(os.path.abspath(path))
        while not current.exists() and current != current.parent:
            missing.append(current)
            current = current.parent
    return sorted(set(missing), key=lambda p: len(p.parts), reverse=True)


def remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove each folder that exists and holds nothing but empty folders (never a file)."""
    for folder in folders:
        if not folder.is_dir() or any(not p.is_dir() or p.is_symlink() for p in folder.rglob("*")):
            continue
        for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
        folder.rmdir()
