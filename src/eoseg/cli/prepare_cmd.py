"""``eoseg prepare``: scenes and labels -> chips, manifest, band statistics and folds."""

from __future__ import annotations

from pathlib import Path

import typer

from eoseg.cli.options import CONFIG_ARG, OVERRIDES_ARG, QUIET_OPTION
from eoseg.cli.runtime import missing_folders, remove_if_empty, warning_printer
from eoseg.config import load_config


def prepare_command(
    source: str = CONFIG_ARG,
    overrides: list[str] = OVERRIDES_ARG,
    scenes: Path | None = typer.Option(
        None, "--scenes", help="CSV with columns id, region, one per image and one per target (data.scenes_file); "
        "with data.format: the competition's file or folder (docs/recipes)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (data.root)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every scene instead of resuming."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Cut scenes and labels into georeferenced chips with a manifest, band statistics and folds.

    A re-run skips finished scenes; --overwrite redoes them.

    Example: eoseg prepare buildings --scenes scenes.csv --out chips data.chips.scales=[1]

    Example: eoseg prepare buildings --scenes AOI_2_Vegas_Train --out chips data.format.name=spacenet
    """
    from eoseg.data.prepare import prepare
    config = load_config(source, overrides or [])
    if scenes is not None:
        config.data.scenes_file = scenes
    if out is not None:
        config.data.root = out
    created = missing_folders([config.data.root])  # data.root may come from the YAML, not the command line
    try:
        with warning_printer():
            result = prepare(config, overwrite=overwrite, progress=not quiet)
    except BaseException:
        remove_if_empty(created)  # a refused dataset leaves no empty chip folder
        raise
    resumed = f" ({len(result.resumed)} resumed)" if result.resumed else ""
    if result.empty:
        resumed += f"; {len(result.empty)} scene(s) without valid pixels: {', '.join(result.empty)}"
    typer.echo(f"{result.chips} chips from {result.scenes} scenes{resumed} in {result.root}")
    typer.echo(f"manifest: {result.manifest}  stats: {result.stats}")


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare_command)
