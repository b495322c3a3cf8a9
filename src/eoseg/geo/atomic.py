"""Atomic file writes: a file that exists is complete.

A write that fails for a reason the user can fix (disk full, read-only disk, no permission) becomes an
:class:`~eoseg.errors.InputError` that names the file and the cause; the temporary file is removed and
an existing target is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from eoseg.errors import EosegError, InputError

WRITE_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "file too large for the file system",
}
LOW_SPACE = 1 << 20  # less free space than this after a failed write: the disk is full


def disk_full(folder: str | os.PathLike[str]) -> bool:
    """Whether the file system holding ``folder`` has (almost) no free space left."""
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE
    except OSError:
        return False


def write_failed(target: str | os.PathLike[str], cause: str) -> InputError:
    """The one-line error for an output that could not be written."""
    return InputError(f"{target}: could not write the output ({cause}); nothing was replaced: free space, "
                      f"fix the permissions or choose another output location, then run again")


def write_cause(target: Path, exc: BaseException) -> str | None:
    """A user-facing cause when ``exc`` is a failed write of ``target`` (None: not a write failure)."""
    if isinstance(exc, OSError) and exc.errno in WRITE_CAUSES:
        cause = WRITE_CAUSES[exc.errno]
        return f"{cause}: {exc.strerror}" if exc.strerror and exc.strerror.lower() != cause else cause
    if disk_full(target.parent):
        return "disk full: No space left on device"
    return None


def temporary_beside(target: Path, suffix: str) -> Path:
    """Create the folder of ``target`` and an empty hidden temporary file beside it (``.STEM.XXXX<suffix>``).

    A folder path that runs through a file, a read-only folder or a full disk is an :class:`InputError`.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    except FileExistsError as exc:
        raise write_failed(target, f"{exc.filename or target.parent} is a file, not a folder") from exc
    except NotADirectoryError as exc:
        raise write_failed(target, "a folder on the way is a file") from exc
    except OSError as exc:
        raise write_failed(target, write_cause(target, exc) or exc.strerror or str(exc)) from exc
    os.close(fd)
    return Path(name)


def leftover_temporaries(folder: str | os.PathLike[str], stem: str, suffix: str) -> list[Path]:
    r"""Temporary files in ``folder`` that :func:`temporary_beside` made and a killed writer left behind.

    ``stem`` and ``suffix`` are regular expressions for the target's stem and the temporary's suffix; a name
    must match ``.STEM.<random>SUFFIX`` whole, with a random part that has no dot (``mkstemp``'s). So
    ``re.escape("a") + r"\.[^.]+"`` (the products ``a.<product>.<ext>`` of scene ``a``) finds
    ``.a.prob.k2x9_qzr.part.tif`` but never ``.a.b.prob.k2x9_qzr.part.tif``, a temporary of scene ``a.b``.
    """
    pattern = re.compile(rf"\.(?:{stem})\.[^./]+(?:{suffix})")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(Path(folder) / n for n in names if pattern.fullmatch(n))


def writable_folder(folder: str | os.PathLike[str], option: str) -> Path:
    """Create ``folder`` if needed and check that files can be written in it, before any work is done.

    ``option`` names the setting in the message (``train.out``). A file where a folder is needed, a read-only
    file system or missing permissions is an :class:`InputError` that says what to do.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (FileExistsError, NotADirectoryError) as exc:
        in_the_way = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        where = "" if in_the_way == folder else f"{in_the_way} "
        raise InputError(f"{folder}: {where}is a file, not a folder; choose another {option}") from exc
    except OSError as exc:
        cause = WRITE_CAUSES.get(exc.errno or 0, exc.strerror or str(exc))
        raise InputError(f"{folder}: cannot write there ({cause}); choose another {option} or fix the folder's "
                         "permissions") from exc
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    The temporary file keeps the target's suffix, so drivers that pick a format by extension work.
    On failure the temporary file is removed and an existing ``target`` is left untouched.
    """
    target = Path(target)
    tmp = temporary_beside(target, f".part{target.suffix}")
    tmp.unlink()  # writers create the file themselves (some refuse to overwrite)
    try:
        yield tmp
        os.replace(tmp, target)
    except EosegError:
        raise
    except Exception as exc:  # OSError, or GDAL's CPLE_* errors (e.g. "Write error at scanline 0")
        cause = write_cause(target, exc)
        if cause is None:
            raise
        raise write_failed(target, cause) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def check_not_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    files: Iterable[str | os.PathLike[str]] = (),
    folders: Iterable[str | os.PathLike[str]] = (),
    option: str = "--out",
) -> None:
    """Refuse outputs that would overwrite an input: ``files`` equal to an input, ``folders`` that are or hold one.

    Paths are compared resolved (symlinks, ``..``, relative paths). Raises :class:`InputError` naming both.
    """
    resolved = [(Path(p), Path(p).resolve()) for p in inputs]
    for out, contains in [*((f, False) for f in files), *((f, True) for f in folders)]:
        target = Path(out).resolve()
        for given, path in resolved:
            if path == target or (contains and target in path.parents):
                where = "is" if path == target else "holds"
                raise InputError(f"{option} {out}: {where} the input {given}; the output would overwrite it: "
                                 "choose another output path")
