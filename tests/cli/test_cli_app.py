"""The command line: help with examples, one-line errors without traceback, --debug."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from eoseg.cli import app

runner = CliRunner()


def eoseg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eoseg", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "config" in result.output


def _leaf_commands(group, prefix: tuple[str, ...] = ()) -> list:
    leaves = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group
            leaves += _leaf_commands(cmd, (*prefix, name))
        else:
            leaves.append(((*prefix, name), cmd))
    return leaves


def test_every_command_has_help_with_an_example():
    leaves = _leaf_commands(typer.main.get_command(app))
    assert leaves
    for path, cmd in leaves:
        assert "Example" in (cmd.help or ""), " ".join(path)
        assert runner.invoke(app, [*path, "--help"]).exit_code == 0, " ".join(path)


def test_config_show_prints_resolved_yaml():
    result = eoseg("config", "show", "buildings", "model.encoder=efficientnet-b2")
    assert result.returncode == 0, result.stderr
    assert "encoder: efficientnet-b2" in result.stdout


@pytest.mark.parametrize("debug", [False, True])
def test_user_error_is_one_line_without_traceback_unless_debug(debug: bool):
    args = (["--debug"] if debug else []) + ["config", "show", "buildings", "model.encodr=x"]
    result = eoseg(*args)
    assert result.returncode != 0
    if debug:
        assert "Traceback" in result.stderr
    else:
        assert "Traceback" not in result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, result.stderr
        assert "unknown key model.encodr (did you mean 'encoder'?)" in lines[0]
