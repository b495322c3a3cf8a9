"""Distributed training: two CPU processes (gloo) through `eoseg train`, as a user would launch it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eoseg.config import save_config
from eoseg.models.checkpoint import load_bundle

from .chipdata import tiny_config


@pytest.mark.timeout(300)
def test_ddp_with_two_cpu_processes_runs_an_epoch(chips, tmp_path, tmp_path_factory):
    config = tiny_config(chips("binary"), "binary", tmp_path, {  # every parameter used: the full-depth encoder
        "train.batch_size": 2, "model.arch_params": {"decoder_channels": [16, 16, 8, 8, 8]}})
    path = save_config(config, tmp_path / "ddp.yaml")
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path_factory.getbasetemp() / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # rank 1 starts after rank 0 compiled the imports
    command = [str(Path(sys.executable).with_name("eoseg")), "train", str(path), "train.strategy=ddp",
               "train.devices=2", "train.accelerator=cpu", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 1 epoch(s), 2 steps" in done.stderr  # 8 training chips, 2 processes x batch 2
    assert load_bundle(tmp_path / "tiny-binary" / "checkpoints" / "last.ckpt").extra["epoch"] == 0
