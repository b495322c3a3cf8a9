"""``eoseg config``: show resolved configs and list presets."""

from __future__ import annotations

import typer
from rich.syntax import Syntax

from eoseg.cli.options import CONFIG_ARG, OVERRIDES_ARG
from eoseg.config import config_to_yaml, list_presets, load_config
from eoseg.progress import console

config_app = typer.Typer(help="Show the resolved configuration of a preset or file.", no_args_is_help=True)


@config_app.command("show")
def show(source: str = CONFIG_ARG, overrides: list[str] = OVERRIDES_ARG) -> None:
    """Print the resolved config: defaults, then the preset or file, then the overrides; refuse a
    model.arch or model.encoder (from a file or an override) that segmentation-models-pytorch does not know.

    Example: eoseg config show buildings model.encoder=efficientnet-b2 train.epochs=30
    """
    # a shipped preset's own model names are checked by the tests; names from a file or an override are checked
    # here (importing smp and torch, 10-15 s), not only when a model is built
    named = {item.partition("=")[0].strip() for item in overrides or []}
    check = source not in list_presets() or bool(named & {"model.arch", "model.encoder"})
    config = load_config(source, overrides or [], check_models=check)
    typer.echo(config_to_yaml(config), nl=False) if not console.is_terminal else console.print(
        Syntax(config_to_yaml(config), "yaml")
    )


@config_app.command("presets")
def presets() -> None:
    """List the presets shipped with eoseg.

    Example: eoseg config presets
    """
    for name in list_presets():
        config = load_config(name)
        typer.echo(f"{name:<16} {config.description}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
