"""``eoseg prepare`` on the command line: summary, --scenes/--out, resume, --overwrite, user errors.

The command is mounted on its own Typer app, so the test does not import the other commands (torch).
The one-line printing of user errors by ``eoseg.cli.main`` is tested in tests/cli.
"""

from __future__ import annotations

import pytest
import typer
from fixtures.synthetic_scenes import buildings_scene, grid, square_buildings
from typer.testing import CliRunner

from eoseg.cli import prepare_cmd
from eoseg.errors import InputError

runner = CliRunner()
app = typer.Typer()
prepare_cmd.register(app)


@app.callback()
def _group() -> None:
    """Keeps ``prepare`` a named sub-command, as in the eoseg app."""


@pytest.fixture
def scenes_csv(tmp_path):
    buildings_scene(tmp_path / "in")
    csv = tmp_path / "in" / "scenes.csv"
    csv.write_text("id,image,mask\ntown,scene.tif,buildings.geojson\n")
    return csv


def test_prepare_prints_a_summary_resumes_and_overwrites(tmp_path, scenes_csv):
    args = ["prepare", "demo", "--scenes", str(scenes_csv), "--out", str(tmp_path / "out"), "--quiet"]
    args += ["data.chips.size=64", "data.chips.overlap=0", "data.folds=1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"4 chips from 1 scenes in {tmp_path / 'out'}" in first.output
    assert (tmp_path / "out" / "config.yaml").is_file()
    again = runner.invoke(app, args)
    assert "4 chips from 1 scenes (1 resumed)" in again.output
    redone = runner.invoke(app, [*args, "--overwrite"])
    assert redone.exit_code == 0 and "resumed" not in redone.output


def test_prepare_user_error_names_the_file(tmp_path):
    result = runner.invoke(app, ["prepare", "demo", "--scenes", str(tmp_path / "none.csv")])
    assert isinstance(result.exception, InputError)
    assert "none.csv: scenes file does not exist" in str(result.exception)


def test_prepare_prints_a_label_warning_as_one_line(tmp_path, scenes_csv):
    square_buildings(grid(1.0, (700_000.0, 4_000_000.0)), [(0, 0)]).to_file(tmp_path / "in" / "far.geojson")
    scenes_csv.write_text("id,image,mask\ntown,scene.tif,far.geojson\n")
    args = ["prepare", "demo", "--scenes", str(scenes_csv), "--out", str(tmp_path / "out"), "--quiet"]
    result = runner.invoke(app, [*args, "data.chips.size=64", "data.chips.overlap=0", "data.folds=1"])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "far.geojson: no label feature overlaps the scene" in result.output
