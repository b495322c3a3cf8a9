"""Optimisers (AdamW, Adam, SGD with Nesterov momentum) and learning-rate schedules from config.

Schedules that follow the iteration count (one-cycle, cosine, poly, warm restarts) are stepped after
every optimiser step; reduce-on-plateau is stepped once per epoch on ``train.monitor``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from eoseg.config.schema import ExperimentConfig, OptimSpec
from eoseg.errors import ConfigError


def build_optimizer(spec: OptimSpec, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser named by ``optim.name`` with its learning rate and weight decay."""
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, eps=spec.eps)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, eps=spec.eps)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov and spec.momentum > 0,
                           weight_decay=spec.weight_decay)


def build_schedule(
    config: ExperimentConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config for ``schedule.name`` (None for ``none``).

    ``total_steps`` is the number of optimiser steps of the whole run (Lightning's
    ``estimated_stepping_batches``).
    """
    spec, lr = config.schedule, config.optim.lr
    total_steps = max(int(total_steps), 1)
    per_epoch = max(total_steps // config.train.epochs, 1)
    if spec.name == "none":
        return None
    if spec.name == "plateau":
        scheduler = lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.train.monitor_mode, factor=spec.factor, patience=spec.patience, min_lr=spec.min_lr
        )
        return {"scheduler": scheduler, "interval": "epoch", "monitor": config.train.monitor, "strict": True}
    if spec.name == "onecycle":
        if total_steps < 4:
            raise ConfigError(f"schedule.name=onecycle needs at least 4 optimiser steps but the run has {total_steps}; "
                              "train for more epochs or batches, or use schedule.name=none")
        # both phases need at least one step, or OneCycleLR divides by zero on short runs
        pct_start = min(max(spec.pct_start, 2 / total_steps), 1 - 1 / total_steps)
        scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=pct_start)
    elif spec.name == "cosine":
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=spec.min_lr)
    elif spec.name == "poly":
        scheduler = lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=spec.power)
    else:  # warm_restarts: t_0 is counted in epochs, stepped per iteration
        scheduler = lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=spec.t_0 * per_epoch, T_mult=spec.t_mult, eta_min=spec.min_lr
        )
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}
