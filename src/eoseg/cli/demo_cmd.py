"""``eoseg demo``: the whole pipeline on a synthetic town, in a few minutes on a laptop CPU."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from eoseg.cli.options import OVERRIDES_ARG, QUIET_OPTION
from eoseg.progress import console

stdout = Console()


def demo(
    overrides: list[str] = OVERRIDES_ARG,
    out: Path = typer.Option(Path("eoseg-demo"), "--out", "-o", help="Folder for every output (new, empty, or an "
                             "earlier demo's)."),
    quick: bool = typer.Option(False, "--quick", help="A smaller town and shorter training (3 minutes on 2 cores; "
                               "for CI)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic town."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Generate a synthetic town, then prepare, train, predict the held-out scene with TTA, vectorize, evaluate.

    Example: eoseg demo --out eoseg-demo      (then open eoseg-demo/runs/demo/report.html)
    """
    from eoseg.demo.run import TARGETS, run_demo

    started = time.perf_counter()
    result = run_demo(out, quick=quick, seed=seed, overrides=overrides or [], progress=not quiet)
    seconds = time.perf_counter() - started

    scores = Table(title=f"held-out scene {result.metrics['scene']}", title_justify="left")
    for column in ("metric", "value", "target"):
        scores.add_column(column, justify="right" if column != "metric" else "left")
    for name, value, target in (
        ("pixel IoU", result.pixel_iou, TARGETS["pixel_iou"]),
        ("pixel F1", result.pixel_f1, None),
        ("object F1 (IoU >= 0.5)", result.object_f1, TARGETS["object_f1"]),
    ):
        shown = "" if target is None or quick else (f"≥ {target:.2f} " + ("✓" if value >= target else "✗"))
        scores.add_row(name, f"{value:.3f}", shown)
    stdout.print(scores)
    typer.echo("outputs:")  # plain lines, never wrapped, so paths can be copied
    for name, path in result.outputs().items():
        typer.echo(f"  {name:<28} {path}")
    steps = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in result.timings.items())
    console.print(f"done in {seconds:.0f} s ({steps})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
