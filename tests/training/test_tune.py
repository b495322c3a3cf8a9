"""`eoseg tune`: optuna over learning rate and weight decay, best values as a config overlay."""

from __future__ import annotations

import pytest
import yaml

from eoseg.errors import ConfigError
from eoseg.training.tune import tune

from .chipdata import tiny_config


def test_tune_writes_the_best_values_as_an_overlay(chips, tmp_path):
    config = tiny_config(chips("binary"), "binary", tmp_path, {
        "tune": {"lr": [1e-4, 1e-2], "weight_decay": [1e-8, 1e-4], "epochs": 1},
        "train.limit_train_batches": 1, "train.limit_val_batches": 1})
    result = tune(config, trials=2, progress=False)
    overlay = yaml.safe_load(result.overlay.read_text())
    assert result.overlay == tmp_path / "tiny-binary" / "tune.yaml" and result.trials == 2
    assert overlay == {"optim": {"lr": result.lr, "weight_decay": result.weight_decay}}
    assert 1e-4 <= result.lr <= 1e-2 and 1e-8 <= result.weight_decay <= 1e-4
    assert len(result.table.read_text().splitlines()) == 3  # header + 2 trials


def test_tune_ranges_must_be_log_uniform(chips, tmp_path):
    config = tiny_config(chips("binary"), "binary", tmp_path, {"tune": {"weight_decay": [0.0, 1e-3]}})
    with pytest.raises(ConfigError, match=r"tune.weight_decay: a log-uniform range needs 0 < low < high"):
        tune(config, trials=1, progress=False)
