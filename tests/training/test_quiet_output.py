"""``eoseg train --quiet`` prints eoseg's own lines only: none of Lightning's start-up notes (GPU/TPU available,
the litlogger tip, ``limit_*_batches=1.0`` was configured, the stepping-batches estimate, the logging-interval
warning, ``Trainer.fit stopped``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eoseg.config import save_config

from .chipdata import tiny_config

NOISE = ("GPU available", "TPU available", "Tip:", "litlogger", "was configured so", "Loading `train_dataloader`",
         "logging interval", "`Trainer.fit` stopped", "weights_only")


@pytest.mark.slow
def test_train_quiet_prints_only_what_eoseg_says(chips, tmp_path):
    config = tiny_config(chips("binary"), "binary", tmp_path / "runs", {"train.epochs": 1})
    path = save_config(config, tmp_path / "tiny.yaml")
    result = subprocess.run([sys.executable, "-m", "eoseg", "train", str(path), "--quiet"], capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "500"}, timeout=300)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert not [word for word in NOISE if word in output], output
    run = tmp_path / "runs" / "tiny-binary"
    lines = output.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("trained 1 epoch(s), "), output
    assert lines[1:] == [f"best checkpoint: {run / 'checkpoints' / 'best.ckpt'}", f"run folder: {run}",
                         f"report: {run / 'report.html'}"]
