"""Run ``eoseg`` commands in-process as a user types them (exit code checked, output returned)."""

from __future__ import annotations

import pytest

from eoseg.cli import main


def eoseg(*args: object, code: int = 0, capsys: pytest.CaptureFixture | None = None) -> str:
    """``eoseg ARGS``; asserts the exit code and returns what it printed (when ``capsys`` is given)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    printed = capsys.readouterr() if capsys is not None else None
    assert exit_info.value.code == code, printed
    return (printed.out + printed.err) if printed is not None else ""
