"""``eoseg tune``: an optuna search over learning rate and weight decay (the Open Cities recipe).

Each trial trains ``tune.epochs`` epochs with ``optim.lr`` and ``optim.weight_decay`` drawn log-uniformly
from ``tune.lr`` and ``tune.weight_decay``; a median pruner stops trials whose validation metric
(``train.monitor``) falls behind the median of earlier trials at the same epoch. The best values are
written as a config overlay (``optim: {lr, weight_decay}``) beside the trials table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import optuna
import yaml

from eoseg.config.schema import ExperimentConfig
from eoseg.errors import ConfigError
from eoseg.geo.atomic import atomic_path, write_text_atomic
from eoseg.training.train import run_folder, train


@dataclass
class TuneResult:
    """Best values of a search and where they were written."""

    lr: float
    weight_decay: float
    value: float
    trials: int
    pruned: int
    overlay: Path
    table: Path


class PruneOnMonitor(L.Callback):
    """Report ``train.monitor`` to optuna after every validation and stop the trial when it is pruned."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self.trial.report(float(value), step=trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {trainer.current_epoch}: {self.monitor}={float(value):.4f}")


def _log_range(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = bounds
    if not 0 < low < high:
        raise ConfigError(f"tune.{name}: a log-uniform range needs 0 < low < high (got {list(bounds)})")
    return low, high


def tune(config: ExperimentConfig, trials: int, out: Path | None = None, progress: bool = True) -> TuneResult:
    """Run ``trials`` optuna trials; write the best ``optim`` values to ``out`` (default ``<run>/tune.yaml``)."""
    if trials < 1:
        raise ConfigError(f"--trials {trials}: give at least one trial")
    lr_range, wd_range = _log_range("lr", config.tune.lr), _log_range("weight_decay", config.tune.weight_decay)
    folder = run_folder(config)
    direction = "maximize" if config.train.monitor_mode == "max" else "minimize"
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=config.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1),
    )

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *lr_range, log=True)
        weight_decay = trial.suggest_float("weight_decay", *wd_range, log=True)
        trial_config = config.model_copy(deep=True)
        trial_config.name = f"{config.name}-tune/trial-{trial.number:03d}"
        trial_config.optim.lr, trial_config.optim.weight_decay = lr, weight_decay
        trial_config.train.epochs = config.tune.epochs
        trial_config.train.mlflow.enabled = False
        result = train(trial_config, progress=progress, callbacks=[PruneOnMonitor(trial, config.train.monitor)],
                       report=False, overwrite=True)  # trial folders are the search's scratch space
        if result.best_score is None:
            raise optuna.TrialPruned(f"{config.train.monitor} was never logged")
        return result.best_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=trials, catch=())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"tune: all {trials} trials were pruned or failed; run more trials or widen tune.lr")
    best = study.best_trial
    overlay = Path(out) if out is not None else folder / "tune.yaml"
    table = overlay.with_name(overlay.stem + "-trials.csv")
    write_text_atomic(overlay, yaml.safe_dump(
        {"optim": {"lr": float(best.params["lr"]), "weight_decay": float(best.params["weight_decay"])}},
        sort_keys=False,
    ))
    with atomic_path(table) as tmp:
        study.trials_dataframe().to_csv(tmp, index=False)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuneResult(best.params["lr"], best.params["weight_decay"], float(best.value), len(study.trials), pruned,
                      overlay, table)
