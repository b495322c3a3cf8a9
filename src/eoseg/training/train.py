"""``eoseg train``: fit a model on a prepared chip dataset with Lightning and write a run folder.

Run folder ``train.out/<name>/``::

    config.yaml                 the resolved config
    metrics.csv                 every logged value (CSV logger, always)
    checkpoints/best.ckpt       best epoch by train.monitor
    checkpoints/last.ckpt       end of the latest epoch, or where SIGINT/SIGTERM stopped the run (--resume continues)
    tensorboard/                when train.tensorboard
    report.html                 learning curves, validation samples, confusion matrix

MLflow (``train.mlflow.enabled``) receives the parameters, per-epoch metrics, the config and the best
checkpoint; the tracking URI is ``train.mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a local
store in ``./mlruns`` (``mlflow.db`` plus ``artifacts/``; ``mlflow ui --backend-store-uri
sqlite:///mlruns/mlflow.db`` shows it).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from eoseg.config.loader import config_to_dict, save_config
from eoseg.config.schema import ExperimentConfig
from eoseg.data.datamodule import ChipDataModule
from eoseg.errors import ConfigError, InputError
from eoseg.geo.atomic import writable_folder
from eoseg.geo.products import IGNORE
from eoseg.models.checkpoint import model_state, read_checkpoint
from eoseg.report.render import display_rgb
from eoseg.report.training_report import training_report
from eoseg.tasks.kinds import build_task_kind
from eoseg.training.checkpoint import AtomicCheckpointIO, LastCheckpoint
from eoseg.training.interrupt import StopOnSignal, stop_on_signal
from eoseg.training.module import SegmentationTask

REPORT_SAMPLES = 6
RUN_FOLDERS = ("checkpoints", "tensorboard")
RUN_FILES = ("metrics.csv", "report.html", "config.yaml", "hparams.yaml")


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    monitor: str
    best_score: float | None
    epochs: int
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    report: Path | None = None


def run_folder(config: ExperimentConfig) -> Path:
    """``train.out/<name>``: where a run writes everything."""
    return Path(config.train.out) / config.name


def check_monitor(config: ExperimentConfig, names: Sequence[str]) -> None:
    """``train.monitor`` must be a metric the task logs."""
    valid = [f"val/{n}" for n in [*names, "loss"]]
    per_class = any(config.train.monitor.startswith(f"{v}/") for v in valid)
    if config.train.monitor not in valid and not per_class:
        raise ConfigError(f"train.monitor={config.train.monitor!r} is not logged by the {config.task.kind} task; "
                          f"valid: {', '.join(valid)} (per class: val/<metric>/<class>)")


CSV_REPLACES = r"Experiment logs directory .* exists and is not empty"
"""Lightning's CSV logger warns that it will delete earlier log files when the run folder holds any file."""
CHECKPOINTS_EXIST = r"Checkpoint directory .* exists and is not empty"
"""Lightning's note when ``checkpoints/`` holds files: on ``--resume`` it holds the run being continued."""
LEAFSPEC_DEPRECATED = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
"""torch >= 2.10 deprecates ``LeafSpec``, which Lightning (2.6.6, the newest) still builds at every step
(Lightning-AI/pytorch-lightning#21326): a note for Lightning's developers, nothing a user can act on."""
FEW_BATCHES = r"The number of training batches \(\d+\) is smaller than the logging interval"
"""Lightning's warning that an epoch has fewer batches than eoseg's ``log_every_n_steps`` (10): metrics.csv's step
rows then come every 10 steps across epochs instead of within each, its epoch rows (which the report and the
monitor use) are all there, and the interval is not a setting a user has."""
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
"""Lightning's loggers, whose INFO lines (``GPU available: False, used: False``, ``TPU available``, the
``💡 Tip`` to install litlogger, ``Trainer(limit_train_batches=1.0) was configured ...``, ``Loading
train_dataloader to estimate ...``, ``Trainer.fit stopped: max_epochs=N reached``) tell an eoseg user nothing that
eoseg does not say itself; their warnings (``GPU available but not used``) still show."""


@contextmanager
def lightning_info_off() -> Iterator[None]:
    """Lightning's loggers at WARNING while a run is built and fitted (their levels restored after)."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)



def build_loggers(config: ExperimentConfig, run_dir: Path) -> list[Logger]:
    """CSV always; TensorBoard and MLflow when configured."""
    loggers: list[Logger] = [CSVLogger(save_dir=run_dir, name="", version="")]
    if config.train.tensorboard:
        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="", default_hp_metric=False))
    if config.train.mlflow.enabled:
        spec = config.train.mlflow
        uri, artifacts = spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), None
        if not uri:  # a local store: ./mlruns/mlflow.db (MLflow 3 wants a database) and ./mlruns/artifacts
            store = Path("mlruns").resolve()
            store.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()
        loggers.append(MLFlowLogger(experiment_name=spec.experiment, run_name=config.name, tracking_uri=uri,
                                    artifact_location=artifacts))
    return loggers


def flat_params(config: ExperimentConfig) -> dict[str, Any]:
    """The config as ``section.key`` parameters (for MLflow / TensorBoard hparams)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value if isinstance(value, int | float | str | bool) or value is None else str(value)

    walk("", config_to_dict(config))
    return out


def build_trainer(
    config: ExperimentConfig, run_dir: Path, loggers: list[Logger], callbacks: Sequence[Callback], progress: bool
) -> tuple[L.Trainer, ModelCheckpoint]:
    """The Lightning Trainer of a run and its checkpoint callback (best by ``train.monitor`` + last)."""
    spec = config.train
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor=spec.monitor, mode=spec.monitor_mode,
        save_top_k=1, enable_version_counter=False, auto_insert_metric_name=False,
    )
    extra: list[Callback] = [checkpoints, LastCheckpoint(run_dir / "checkpoints"), *callbacks]
    if config.schedule.name != "none":
        extra.append(LearningRateMonitor(logging_interval="step"))
    if progress:
        extra.append(RichProgressBar())
    trainer = L.Trainer(
        default_root_dir=run_dir,
        accelerator=spec.accelerator,
        devices=spec.devices,
        num_nodes=spec.num_nodes,
        strategy=spec.strategy,
        precision=spec.precision,
        max_epochs=spec.epochs,
        max_steps=spec.max_steps,
        accumulate_grad_batches=spec.accumulate,
        gradient_clip_val=spec.grad_clip,
        deterministic=spec.deterministic,
        limit_train_batches=spec.limit_train_batches,
        limit_val_batches=spec.limit_val_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        logger=loggers,
        callbacks=extra,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=progress,
        use_distributed_sampler=False,  # ChipDataModule's sampler splits the draws across processes itself
    )
    return trainer, checkpoints


def train(
    config: ExperimentConfig,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    report: bool = True,
    rounds: list[dict[str, Any]] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train ``config`` on its prepared dataset (``data.root``); return the run's checkpoints and history.

    ``resume=True`` continues from ``checkpoints/last.ckpt`` exactly (weights, optimiser, schedule, epoch,
    random states, sampler position), also when it was written mid-epoch: SIGINT / SIGTERM stop the run
    after the current batch with ``last.ckpt`` written there and raise
    :class:`~eoseg.training.interrupt.TrainingInterrupted`. ``callbacks`` are extra Lightning callbacks
    (e.g. pruning in ``eoseg tune``); ``rounds`` (from ``eoseg self-train``) adds the self-training rounds
    so far to the report. A run folder that holds an earlier run is refused unless ``resume`` or
    ``overwrite`` (which removes the earlier run's outputs first).
    """
    run_dir = run_folder(config)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise InputError(f"{last}: nothing to resume (no last checkpoint in this run folder); train without "
                         f"--resume, or check name and train.out")
    if not resume and rank_zero_only.rank == 0:  # DDP children start while rank 0 is already writing
        earlier = earlier_run(run_dir)
        if earlier and not overwrite:
            raise ConfigError(f"{run_dir}: holds an earlier run ({', '.join(earlier)}); continue it with --resume, "
                              f"replace it with --overwrite, or give another name=...")
        if earlier:
            clear_run(run_dir)
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    kind = build_task_kind(config)
    check_monitor(config, kind.metric_names())
    datamodule = ChipDataModule(config, kind.head_targets, kind.directions)
    module = SegmentationTask(config, datamodule.stats)
    # a file in the way, a read-only disk: one line before any work, and after the dataset's checks, so that
    # a refused dataset leaves no empty run folder behind
    writable_folder(run_dir, "train.out")
    kept_rows = csv_rows_until(run_dir / "metrics.csv", read_checkpoint(last)["epoch"]) if resume else []
    loggers = build_loggers(config, run_dir)
    stop = StopOnSignal(last)
    with lightning_info_off():
        trainer, checkpoints = build_trainer(config, run_dir, loggers, [*callbacks, stop], progress)
    if trainer.is_global_zero:
        with warnings.catch_warnings():  # Lightning: "earlier log files will be deleted"; eoseg carries the kept
            warnings.filterwarnings("ignore", message=CSV_REPLACES)  # rows over and never replaces a finished run
            csv_writer = loggers[0].experiment
        save_config(config, run_dir / "config.yaml")
        csv_writer.metrics.extend(kept_rows)  # the CSV logger starts a new file: carry rows over
    for logger in loggers:
        if isinstance(logger, MLFlowLogger | TensorBoardLogger):
            logger.log_hyperparams(flat_params(config))
    with stop_on_signal(stop), warnings.catch_warnings(), lightning_info_off():
        warnings.filterwarnings("ignore", message=LEAFSPEC_DEPRECATED, category=FutureWarning)
        warnings.filterwarnings("ignore", message=CHECKPOINTS_EXIST)
        warnings.filterwarnings("ignore", message=FEW_BATCHES)
        trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume else None, weights_only=True)
    best = Path(checkpoints.best_model_path) if checkpoints.best_model_path else None
    score = checkpoints.best_model_score
    result = TrainResult(
        run_dir=run_dir,
        best_checkpoint=best if best is not None and best.is_file() else None,
        last_checkpoint=last if last.is_file() else None,
        monitor=config.train.monitor,
        best_score=float(score) if score is not None else None,
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        history=list(module.history),
    )
    if not trainer.is_global_zero:
        return result
    if report:
        samples = collect_samples(module, datamodule, result.best_checkpoint)
        result.report = training_report(run_dir, module.history, samples, module.confusion, config, rounds)
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            _mlflow_artifacts(logger, run_dir, result)
    return result


def earlier_run(run_dir: Path) -> list[str]:
    """What an earlier run left in ``run_dir`` (checkpoints, metrics, report), relative names."""
    found = sorted((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").is_dir() else []
    found += [run_dir / n for n in ("metrics.csv", "report.html") if (run_dir / n).is_file()]
    return [str(p.relative_to(run_dir)) for p in found]


def clear_run(run_dir: Path) -> None:
    """Remove the outputs of an earlier run from ``run_dir`` (``--overwrite``); other files stay."""
    for name in RUN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


def csv_rows_until(path: Path, epoch: int) -> list[dict[str, str]]:
    """Rows of an earlier ``metrics.csv`` up to and including ``epoch`` (what a resumed run keeps)."""
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return [{k: v for k, v in row.items() if v != ""} for row in rows if float(row.get("epoch") or 0) <= epoch]


def _mlflow_artifacts(logger: MLFlowLogger, run_dir: Path, result: TrainResult) -> None:
    """The resolved config, the report and the best checkpoint as artefacts of the MLflow run."""
    for path in (run_dir / "config.yaml", result.report, result.best_checkpoint):
        if path is not None and Path(path).is_file():
            logger.experiment.log_artifact(logger.run_id, str(path))
    logger.finalize("success")


@torch.no_grad()
def collect_samples(
    module: SegmentationTask, datamodule: ChipDataModule, best: Path | None, count: int = REPORT_SAMPLES
) -> list[dict[str, Any]]:
    """Validation samples for the report with the best weights: image, prediction, truth, metric, name."""
    if best is not None:
        module.model.load_state_dict(model_state(read_checkpoint(best)))
    module.eval()
    dataset = datamodule.val_set
    assert dataset is not None
    samples = []
    for index in range(min(count, len(dataset))):
        item = dataset[index]
        image = item["image"][None].to(module.device)
        outputs = module.model(image)
        targets = {k: v[None].to(module.device) for k, v in item["targets"].items()}
        pred, truth, score = module.kind.display(outputs, targets)
        truth = truth[0].cpu().numpy()
        if not np.issubdtype(truth.dtype, np.floating):
            truth = np.where(truth < 0, IGNORE, truth)
        samples.append({"image": display_rgb(item["image"].numpy()), "pred": pred[0].cpu().numpy(), "truth": truth,
                        "metric": float(score[0]), "name": dataset.chip_id(index)})
    return samples
