"""The one LightningModule of eoseg: model, criterion, metrics and optimisation of any task kind.

The task kind (:mod:`eoseg.tasks.kinds`, no Lightning there) supplies what differs between binary, multiclass,
multilabel, change and regression tasks; this module runs the steps, logs ``train/*`` and ``val/*``, keeps
the per-epoch history, refuses a non-finite loss and writes the self-describing ``eoseg`` checkpoint entry.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torchmetrics import MeanMetric

from eoseg.config.schema import ExperimentConfig
from eoseg.data.mixing import PSEUDO
from eoseg.errors import EosegError
from eoseg.losses import build_criterion
from eoseg.models import build_model
from eoseg.models.checkpoint import KEY, init_from_checkpoint
from eoseg.tasks.kinds import TaskKind, build_task_kind
from eoseg.training.checkpoint import LastCheckpoint, describe, restore_rng
from eoseg.training.optim import build_optimizer, build_schedule


class SegmentationTask(L.LightningModule):
    """Trains ``build_model(config.model, ...)`` with ``build_criterion(config)`` for ``config.task.kind``.

    ``stats`` is the prepared dataset's ``stats.json`` content; its ``inputs`` fix the input channels.
    """

    def __init__(self, config: ExperimentConfig, stats: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.stats = dict(stats)
        self.kind: TaskKind = build_task_kind(config)
        self.model = build_model(config.model, config.task, len(self.stats["inputs"]))
        if config.model.init_checkpoint is not None:
            init_from_checkpoint(self.model, config.model.init_checkpoint)
        self.criterion = build_criterion(config)
        mix = config.selftrain.mix
        self.pseudo_criterion = (
            build_criterion(config.model_copy(update={"loss": mix.loss})) if mix is not None and mix.loss else None
        )
        self.val_metrics = self.kind.build_metrics()
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.history: list[dict[str, float]] = []
        self.confusion: np.ndarray | None = None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.model(x)

    def _losses(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor, dict[str, Tensor]]:
        outputs = self.model(batch["image"])
        total, parts = self.criterion(outputs, batch["targets"])
        return outputs, total, parts

    def _mixed_losses(self, batches: dict[str, dict[str, Any]]) -> tuple[Tensor, dict[str, Tensor], int]:
        """``selftrain.mix``: each source's loss (its own criterion) times its weight, summed."""
        mix = self.config.selftrain.mix
        assert mix is not None
        total: Tensor | None = None
        parts: dict[str, Tensor] = {}
        size = 0
        for source, batch in batches.items():
            pseudo = source == PSEUDO
            criterion = (self.pseudo_criterion or self.criterion) if pseudo else self.criterion
            value, terms = criterion(self.model(batch["image"]), batch["targets"])
            weighted = (mix.weight if pseudo else mix.labelled_weight) * value
            total = weighted if total is None else total + weighted
            parts[f"{source}/loss"] = value.detach()
            parts.update({f"{source}/{k}": v for k, v in terms.items()})
            size += batch["image"].shape[0]
        assert total is not None
        return total, parts, size

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if "parts" in batch:
            total, parts, size = self._mixed_losses(batch["parts"])
        else:
            _, total, parts = self._losses(batch)
            size = batch["image"].shape[0]
        self._stop_if_not_finite(total, batch_idx)
        self.train_loss.update(total.detach())
        self.log("train/loss", total.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, on_step=False, on_epoch=True,
                      batch_size=size, sync_dist=True)
        return total

    def _stop_if_not_finite(self, total: Tensor, batch_idx: int) -> None:
        """Stop with a clear message when the loss is NaN or infinite on any process."""
        bad = self.trainer.strategy.reduce_boolean_decision(not bool(torch.isfinite(total)), all=False)
        if not bad:
            return
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        last = [c.path for c in self.trainer.callbacks if isinstance(c, LastCheckpoint) and c.path is not None]
        kept = (f"the last good checkpoint is kept: {last[0]}" if last and last[0].is_file()
                else "no checkpoint had been written yet")
        raise EosegError(
            f"training loss is {float(total)} at step {self.global_step} (epoch {self.current_epoch}, batch "
            f"{batch_idx}); training stopped. Lower the learning rate (optim.lr={lr:g} now; try "
            f"optim.lr={lr / 10:g}) or set train.grad_clip; {kept}"
        )

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs, total, _ = self._losses(batch)
        self.val_loss.update(total.detach())
        self.kind.update_metrics(self.val_metrics, outputs, batch["targets"])

    def on_validation_epoch_end(self) -> None:
        values = self.kind.compute_metrics(self.val_metrics)
        values["loss"] = float(self.val_loss.compute())
        confusion = self.val_metrics["main"].confusion_matrix()
        self.confusion = confusion.cpu().numpy() if confusion is not None else None
        for metric in (*self.val_metrics.values(), self.val_loss):
            metric.reset()
        overall = {f"val/{k}": v for k, v in values.items() if "/" not in k}
        # torchmetrics' compute() has already reduced over the processes, so every rank holds the same values:
        # sync_dist=True says so to Lightning (under DDP it warned once per metric to use it)
        self.log_dict(overall, prog_bar=True, sync_dist=True)
        self.log_dict({f"val/{k}": v for k, v in values.items() if "/" in k}, sync_dist=True)
        if not self.trainer.sanity_checking:
            entry = {"epoch": self.current_epoch, "step": self.global_step,
                     "lr": self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else 0.0,
                     "train/loss": float(self.train_loss.compute()) if self.train_loss.update_count else float("nan")}
            self.history = [h for h in self.history if h["epoch"] != self.current_epoch]
            self.history.append({**entry, **{f"val/{k}": v for k, v in values.items()}})

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.config.optim, self.parameters())
        schedule = build_schedule(self.config, optimizer, self.trainer.estimated_stepping_batches)
        return optimizer if schedule is None else {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = describe(self.config, self.stats, self.history)
        # the running mean of the epoch's training loss, so that a mid-epoch resume reports the same mean
        loss = self.train_loss
        checkpoint[KEY]["train_loss"] = [loss.mean_value.detach().cpu(), loss.weight.detach().cpu()]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        entry = checkpoint.get(KEY)
        if entry is not None:
            self.history = [dict(h) for h in entry.get("history", [])]
            restore_rng(entry["rng"])
            if "train_loss" in entry:
                mean, weight = entry["train_loss"]
                self.train_loss.mean_value.copy_(mean)
                self.train_loss.weight.copy_(weight)
