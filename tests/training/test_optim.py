"""Optimisers and learning-rate schedules, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from eoseg.training.optim import build_optimizer, build_schedule

from .chipdata import tiny_config


def _lrs(tmp_path, schedule: dict, steps: int, epochs: int = 4) -> list[float]:
    config = tiny_config(tmp_path, "binary", tmp_path, {"schedule": schedule, "optim.lr": 0.1, "train.epochs": epochs})
    optimizer = build_optimizer(config.optim, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = build_schedule(config, optimizer, steps)["scheduler"]
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_poly_cosine_onecycle_and_warm_restarts(tmp_path):
    poly = _lrs(tmp_path, {"name": "poly", "power": 0.9}, 20)
    assert poly[5] == pytest.approx(0.1 * (1 - 5 / 20) ** 0.9)
    cosine = _lrs(tmp_path, {"name": "cosine", "min_lr": 0.0}, 20)
    assert cosine[10] == pytest.approx(0.05) and cosine[0] == pytest.approx(0.1)
    onecycle = _lrs(tmp_path, {"name": "onecycle", "pct_start": 0.25}, 40)
    assert max(onecycle) == pytest.approx(0.1) and onecycle.index(max(onecycle)) in (9, 10)
    assert onecycle[0] == pytest.approx(0.1 / 25)  # torch's default div_factor
    # 40 steps over 4 epochs = 10 per epoch; t_0 = 2 epochs -> a restart every 20 steps
    restarts = _lrs(tmp_path, {"name": "warm_restarts", "t_0": 2, "min_lr": 0.0}, 40)
    assert restarts[20] == pytest.approx(0.1) and restarts[10] == pytest.approx(0.05)
    assert restarts[19] == pytest.approx(0.05 * (1 + math.cos(math.pi * 19 / 20)))


def test_optimisers(tmp_path):
    config = tiny_config(tmp_path, "binary", tmp_path, {"optim": {"name": "sgd", "lr": 0.05, "weight_decay": 1e-4}})
    sgd = build_optimizer(config.optim, [torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    config = tiny_config(tmp_path, "binary", tmp_path, {"optim": {"name": "adam", "lr": 0.05}})
    assert type(build_optimizer(config.optim, [torch.nn.Parameter(torch.zeros(1))])) is torch.optim.Adam
    config = tiny_config(tmp_path, "binary", tmp_path, {"schedule.name": "plateau", "train.monitor": "val/loss",
                                                        "train.monitor_mode": "min"})
    plateau = build_schedule(config, build_optimizer(config.optim, [torch.nn.Parameter(torch.zeros(1))]), 10)
    assert plateau["interval"] == "epoch" and plateau["monitor"] == "val/loss"


def test_onecycle_on_a_very_short_run_peaks_inside_the_run(tmp_path):
    lrs = _lrs(tmp_path, {"name": "onecycle", "pct_start": 0.2}, 5, epochs=1)  # OneCycleLR alone divides by zero
    assert max(lrs) == pytest.approx(0.1)
    assert lrs[0] < 0.1 and lrs[-1] < 0.1


def test_onecycle_with_too_few_steps_is_a_clear_error(tmp_path):
    from eoseg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"schedule.name=onecycle needs at least 4 optimiser steps but the run has 3"):
        _lrs(tmp_path, {"name": "onecycle"}, 3, epochs=1)
