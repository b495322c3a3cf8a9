"""The ``eoseg`` command: sub-commands, the ``--debug`` switch and one-line user errors."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.text import Text
from typer.core import TyperArgument, TyperCommand

from eoseg.cli.runtime import (
    INTERRUPTED,
    Interrupted,
    missing_folders,
    one_line,
    output_folders,
    print_error,
    remove_if_empty,
    said_where_it_stopped,
    warning_printer,
)
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
    "eoseg.cli.export_cmd",
    "eoseg.cli.selftrain_cmd",
    "eoseg.cli.post_cmd",
    "eoseg.cli.evaluate_cmd",
    "eoseg.cli.demo_cmd",
    "eoseg.cli.config_cmd",
]


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    """eoseg: from GeoTIFFs and vector labels to models, whole-scene predictions, polygons and metrics."""


class ReadableUsage(TyperCommand):
    """A usage line that names arguments as their help does (``MASK...``, ``[KEY=VALUE]...``): typer wraps each
    required argument in braces (``{masks}...``, ``{PRESET_OR_FILE}``) and an optional one in brackets again."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces += [usage_name(param)] if isinstance(param, TyperArgument) else param.get_usage_pieces(ctx)
        return pieces


def usage_name(argument: TyperArgument) -> str:
    """The metavar as written (it says repeats and optional parts itself), else NAME, NAME... or [NAME]."""
    if argument.metavar is not None:
        return argument.metavar
    name = (argument.name or "").upper() + ("..." if argument.nargs != 1 else "")
    return name if argument.required else f"[{name}]"


def readable_usage(commands: typer.Typer) -> None:
    """Every command of ``commands`` (and of its sub-groups) gets the :class:`ReadableUsage` line."""
    for info in commands.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = ReadableUsage
    for group in commands.registered_groups:
        if group.typer_instance is not None:
            readable_usage(group.typer_instance)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)
readable_usage(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, print user errors as one line (a traceback only with ``--debug``).

    Warnings are printed as one line each; SIGINT/SIGTERM stop cleanly (see :mod:`eoseg.cli.runtime`);
    output folders that a failed command created and left empty are removed.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if debug:  # the root option, wherever it is typed: `eoseg train demo --debug` as well as `eoseg --debug train`
        args = ["--debug", *(a for a in args if a != "--debug")]
    created = missing_folders(output_folders(args))
    interrupted = Interrupted()
    interrupted.install()
    code: int | str | None = 1
    try:
        with warning_printer():
            app(args=args, prog_name="eoseg")
        code = 0
    except EosegError as exc:
        if debug:
            raise
        print_error(exc)
        code = 2
    except (KeyboardInterrupt, SystemExit) as exc:  # typer turns a KeyboardInterrupt into Exit(130)
        code = exc.code if isinstance(exc, SystemExit) else interrupted.exit_code
        stopped = said_where_it_stopped(exc)
        if stopped is not None:
            console.print(Text(one_line(stopped)), highlight=False, soft_wrap=True)
            interrupted.signum = interrupted.signum or stopped.signum
    finally:
        interrupted.restore()
        if code not in (0, None):
            remove_if_empty(created)
    if interrupted.signum is not None:  # Lightning and click turn the interrupt into their own exits
        console.print(Text(INTERRUPTED), highlight=False)
        code = interrupted.exit_code
    sys.exit(code)
