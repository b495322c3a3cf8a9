"""Arguments shared by the commands: a preset or config file, dotted overrides, --quiet."""

from __future__ import annotations

import typer

CONFIG_ARG = typer.Argument(..., metavar="PRESET_OR_FILE", help="A preset name (e.g. buildings) or a YAML file.")
OVERRIDES_ARG = typer.Argument(
    None, metavar="[KEY=VALUE]...", help="Dotted overrides, e.g. model.encoder=efficientnet-b2 train.epochs=30."
)
# every command that draws progress bars turns them off the same way (tune, whose bars are off, has --progress)
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bars.")
