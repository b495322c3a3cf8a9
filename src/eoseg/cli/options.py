"""Arguments shared by the commands: a preset or config file plus dotted overrides."""

from __future__ import annotations

import typer

CONFIG_ARG = typer.Argument(..., metavar="PRESET_OR_FILE", help="A preset name (e.g. buildings) or a YAML file.")
OVERRIDES_ARG = typer.Argument(
    None, metavar="[KEY=VALUE]...", help="Dotted overrides, e.g. model.encoder=efficientnet-b2 train.epochs=30."
)
