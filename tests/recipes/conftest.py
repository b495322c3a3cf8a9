"""Helpers for the recipe tests: run the CLI as a user would, and hash folders to prove nothing changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from eoseg.cli.app import main


def run_cli(args: list[object]) -> None:
    """``eoseg ARGS`` in-process; a non-zero exit fails the test with the command shown."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:  # typer exits 0 after a command finishes
        if exc.code not in (0, None):
            pytest.fail(f"eoseg {' '.join(map(str, args))} exited with {exc.code}")


def folder_hashes(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (empty when it does not exist)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
