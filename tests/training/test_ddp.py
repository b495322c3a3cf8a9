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
    assert "sync_dist" not in done.stderr  # the reduced validation metrics are logged as such (no warning per metric)
    assert load_bundle(tmp_path / "tiny-binary" / "checkpoints" / "last.ckpt").extra["epoch"] == 0


def test_two_nodes_of_one_process_each_are_one_run_with_train_num_nodes(monkeypatch, tmp_path):
    """The README's "several nodes use Lightning's DDP": torchrun on 2 nodes x 1 process. Lightning checks
    devices x num_nodes against the world size; without train.num_nodes it was always 1 and every node refused."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
    from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only

    from eoseg.config import load_config
    from eoseg.training.train import build_trainer

    for rank_zero in (rank_zero_only, utils_rank_zero_only):  # the DDP strategy sets this process's rank in them
        monkeypatch.setattr(rank_zero, "rank", rank_zero.rank)
    torchrun = {"TORCHELASTIC_RUN_ID": "eoseg-test", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0",
                "GROUP_RANK": "1", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29555"}
    for key, value in torchrun.items():
        monkeypatch.setenv(key, value)
    config = load_config("demo", ["train.accelerator=cpu", "train.devices=1", "train.strategy=ddp",
                                  "train.num_nodes=2"])
    trainer, _ = build_trainer(config, tmp_path, [], [], progress=False)
    assert (trainer.num_nodes, trainer.world_size, trainer.global_rank, trainer.node_rank) == (2, 2, 1, 1)
