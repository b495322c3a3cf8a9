"""The ``eoseg`` command: sub-commands, the ``--debug`` switch and one-line user errors."""

from __future__ import annotations

import importlib
import sys

import typer

from eoseg.errors import EosegError
from eoseg.progress import console

app = typer.Typer(
    name="eoseg",
    help="Deep learning on overhead imagery: prepare chips, train, predict whole scenes, vectorize, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Each module defines ``register(app)``; the order is the order of ``eoseg --help``.
COMMAND_MODULES = [
    "eoseg.cli.prepare_cmd",
    "eoseg.cli.train_cmd",
    "eoseg.cli.predict_cmd",
    "eoseg.cli.post_cmd",
    "eoseg.cli.evaluate_cmd",
    "eoseg.cli.demo_cmd",
    "eoseg.cli.config_cmd",
]


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    """eoseg: from GeoTIFFs and vector labels to models, whole-scene predictions, polygons and metrics."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, print user errors as one line (a traceback only with ``--debug``)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="eoseg")
    except EosegError as exc:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted; finished outputs are kept", highlight=False)
        sys.exit(130)
