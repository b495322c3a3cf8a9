"""``eoseg train`` and ``eoseg tune``: thin shells over :mod:`eoseg.training`."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from eoseg.cli.options import CONFIG_ARG, OVERRIDES_ARG, QUIET_OPTION
from eoseg.config import load_config
from eoseg.progress import console


def train_command(
    source: str = CONFIG_ARG,
    overrides: list[str] = OVERRIDES_ARG,
    resume: bool = typer.Option(False, "--resume", help="Continue the run's last checkpoint exactly."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run of the same name."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Train a model on a prepared chip dataset; writes train.out/<name>/ (checkpoints, metrics, report).

    Example: eoseg train buildings data.root=chips/accra train.epochs=30 train.devices=2 train.strategy=ddp
    """
    config = load_config(source, overrides or [])  # a config mistake is answered before Lightning and torch load
    from lightning.pytorch.utilities import rank_zero_only

    from eoseg.training.train import train

    # stopped on SIGINT/SIGTERM, training raises TrainingInterrupted: eoseg.cli.app.main prints where, exits 130/143
    result = train(config, resume=resume, progress=not quiet, overwrite=overwrite)
    if rank_zero_only.rank != 0:
        return
    score = "n/a" if result.best_score is None else f"{result.best_score:.4f}"
    console.print(f"trained {result.epochs} epoch(s), {result.steps} steps; best {result.monitor} = {score}",
                  highlight=False)
    console.print(f"best checkpoint: {result.best_checkpoint}\nrun folder: {result.run_dir}", highlight=False)
    if result.report is not None:
        console.print(f"report: {result.report}", highlight=False)


def tune_command(
    source: str = CONFIG_ARG,
    overrides: list[str] = OVERRIDES_ARG,
    trials: int = typer.Option(20, "--trials", "-n", help="Number of optuna trials."),
    out: Path | None = typer.Option(None, "--out", help="Overlay YAML to write (default: <run folder>/tune.yaml)."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Show each trial's progress bar."),
) -> None:
    """Search learning rate and weight decay with optuna (median pruner); write the best as a config overlay.

    Example: eoseg tune buildings data.root=chips/accra --trials 50
    """
    config = load_config(source, overrides or [])
    from eoseg.training.tune import tune

    result = tune(config, trials, out, progress=progress)
    console.print(f"{result.trials} trials ({result.pruned} pruned); best {config.train.monitor} = {result.value:.4f} "
                  f"with optim.lr={result.lr:.4g} optim.weight_decay={result.weight_decay:.4g}", highlight=False)
    again = shlex.join(["eoseg", "train", source, *(overrides or []), f"optim.lr={result.lr:.6g}",
                        f"optim.weight_decay={result.weight_decay:.6g}"])
    # soft_wrap: the command stays one line to copy, however narrow the terminal
    console.print(f"overlay: {result.overlay}\ntrials: {result.table}\ntrain with: {again}", highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("tune")(tune_command)
