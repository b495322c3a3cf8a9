"""Command-line interface: a thin shell over the library (typer)."""

from eoseg.cli.app import app, main

__all__ = ["app", "main"]
