"""`eoseg tune`: optuna over learning rate and weight decay, best values as a config overlay."""

from __future__ import annotations

import pytest
import yaml

import eoseg.training.tune
from eoseg.cli.app import main
from eoseg.errors import ConfigError
from eoseg.training.tune import TuneResult, tune

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


def test_tune_prints_the_train_command_on_one_line_to_copy(tmp_path, monkeypatch, capsys):
    """The "train with:" command was wrapped at the terminal's width (80 columns here), so a copied command
    ran without its last override; the search itself is the test above, faked here."""
    result = TuneResult(3.14891e-4, 4.51856e-4, 0.2433, 2, 1, tmp_path / "tune.yaml", tmp_path / "trials.csv")
    monkeypatch.setattr(eoseg.training.tune, "tune", lambda *args, **kwargs: result)
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "demo", "data.root=my-chips", "train.out=my-runs", "--trials", "2"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == ("train with: eoseg train demo data.root=my-chips train.out=my-runs optim.lr=0.000314891 "
                         "optim.weight_decay=0.000451856")
