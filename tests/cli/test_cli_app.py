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


def usage_line(path: tuple[str, ...]) -> str:
    """The Usage line of ``eoseg PATH --help`` (joined when it wraps), spaces collapsed."""
    lines = runner.invoke(app, [*path, "--help"]).output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line)
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))  # rich pads blank lines
    return " ".join(" ".join(lines[start:end]).split())


def test_usage_lines_name_arguments_as_their_help_does():
    """typer wrapped required arguments in braces: ``{masks}...``, ``{CKPT... SCENE... [KEY=VALUE]...}...``."""
    usages = {path: usage_line(path) for path, _ in _leaf_commands(typer.main.get_command(app))}
    assert len(usages) >= 15
    odd = {" ".join(path): line for path, line in usages.items() if "{" in line or "[[" in line or "]]" in line}
    assert not odd
    assert usages[("vectorize",)] == "Usage: eoseg vectorize [OPTIONS] MASK..."
    assert usages[("ensemble",)] == "Usage: eoseg ensemble [OPTIONS] RASTER..."
    assert usages[("thresholds",)] == "Usage: eoseg thresholds [OPTIONS] PROB..."
    assert usages[("evaluate",)] == "Usage: eoseg evaluate [OPTIONS] PRED..."
    assert usages[("predict",)] == "Usage: eoseg predict [OPTIONS] CKPT... SCENE... [KEY=VALUE]..."
    assert usages[("self-train",)] == "Usage: eoseg self-train [OPTIONS] PRESET_OR_FILE [SCENE]... [KEY=VALUE]..."
    assert usages[("config", "show")] == "Usage: eoseg config show [OPTIONS] PRESET_OR_FILE [KEY=VALUE]..."


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


def test_debug_after_the_command_shows_the_traceback_too():
    # the README says "add --debug": typed after the command it was refused as "No such option: --debug"
    result = eoseg("config", "show", "buildings", "model.encodr=x", "--debug")
    assert result.returncode == 1, result.stderr
    assert "Traceback" in result.stderr and "No such option" not in result.stderr
    assert "unknown key model.encodr" in result.stderr.splitlines()[-1]


def test_progress_bars_are_turned_off_by_one_quiet_option():
    # tune's bars are off by default, so it alone has --progress to turn them on
    spelled = {}
    for path, cmd in _leaf_commands(typer.main.get_command(app)):
        for param in cmd.params:
            if param.name in ("quiet", "progress"):
                spelled[" ".join(path)] = (param.name, (*param.opts, *param.secondary_opts))
    assert spelled.pop("tune") == ("progress", ("--progress", "--no-progress"))
    assert {"train", "prepare", "predict", "demo", "pseudo-label", "self-train"} <= set(spelled)
    assert set(spelled.values()) == {("quiet", ("--quiet", "-q"))}, spelled


def test_train_quiet_turns_its_progress_bar_off(monkeypatch, tmp_path):
    import eoseg.training.train as training

    seen = {}

    def fake_train(config, resume, progress, overwrite):
        seen["progress"] = progress
        raise SystemExit(0)

    monkeypatch.setattr(training, "train", fake_train)
    for flags, progress in (([], True), (["--quiet"], False), (["-q"], False)):
        assert runner.invoke(app, ["train", "demo", f"train.out={tmp_path}", *flags]).exit_code == 0
        assert seen.pop("progress") is progress


ANSWER_THEN_SAY_IF_TORCH_LOADED = (
    "import sys\n"
    "from eoseg.cli.app import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "finally:\n"
    "    print('torch loaded' if 'torch' in sys.modules else 'torch not loaded', file=sys.stderr)\n"
)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["predict", "gone.ckpt", "a.tif", "--out", "pred"], "gone.ckpt: checkpoint not found"),
        (["predict", "gone.onnx", "a.tif", "--out", "pred"], "gone.onnx: ONNX model not found"),
        (["predict", "model.ckpt", "pre=a.tif,post=gone.tif", "--out", "pred"],
         "gone.tif (argument SCENE): raster file does not exist"),
        (["train", "gone.yaml"], "gone.yaml: config file does not exist"),
        (["export", "gone.ckpt", "--out", "m.onnx"], "gone.ckpt: checkpoint not found"),
        (["pseudo-label", "gone.ckpt", "a.tif", "--out", "pseudo"], "gone.ckpt: checkpoint not found"),
        (["mine-negatives", "gone.ckpt", "--out", "n.parquet"], "gone.ckpt: checkpoint not found"),
        (["self-train", "gone.yaml", "-u", "a.tif"], "gone.yaml: config file does not exist"),
    ],
)
def test_a_mistyped_path_is_answered_before_torch_loads(tmp_path, args, line):
    """Importing torch, Lightning and Ray took 35 to 50 s on the 2 shared cores, all before a typo was reported."""
    (tmp_path / "a.tif").write_bytes(b"")  # present: only the mistyped path is missing
    (tmp_path / "model.ckpt").write_bytes(b"")
    result = subprocess.run([sys.executable, "-c", ANSWER_THEN_SAY_IF_TORCH_LOADED, *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    errors = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert errors[0].startswith(f"error: {line}") and errors[-1] == "torch not loaded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "model.ckpt"]  # no output folder left behind
