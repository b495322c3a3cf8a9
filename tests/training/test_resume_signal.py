"""SIGINT during training: last.ckpt at the next clean point, and --resume ends bit-identical to a run never stopped.

Both cases of issue 10: the signal lands mid-epoch (the sampler's position, the loader's worker seeds and
the augmentation keys must all continue where they were) and in an epoch's last batch (the run stops after
that epoch's validation).
"""

from __future__ import annotations

import csv
import os
import signal

import lightning as L
import pytest
import torch

from eoseg.models.checkpoint import read_checkpoint
from eoseg.training.interrupt import TrainingInterrupted
from eoseg.training.train import train

from .chipdata import tiny_config

OVERRIDES = {
    "train.epochs": 2, "train.batch_size": 2, "train.deterministic": True, "schedule.name": "onecycle",
    "data.augment": [{"name": "HorizontalFlip"}, {"name": "VerticalFlip"}, {"name": "RandomRotate90"},
                     {"name": "RandomBrightnessContrast"}],
}
BATCHES_PER_EPOCH = 4  # 8 training chips (scenes 1, 2), batch 2


class SigintAt(L.Callback):
    """Sends SIGINT to this process while training batch ``step`` (global, 0-based) runs."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def _weights(path):
    return read_checkpoint(path)["state_dict"]


def _val_iou(run_dir):
    with (run_dir / "metrics.csv").open() as file:
        return [(int(float(r["epoch"])), r["val/iou"]) for r in csv.DictReader(file) if r.get("val/iou")]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "workers", "stopped_at"), [(5, 1, (1, 6)), (3, 0, (0, 4))],
                         ids=["mid-epoch-with-a-worker", "epoch-end"])
def test_sigint_then_resume_is_bit_identical(chips, tmp_path, step, workers, stopped_at):
    overrides = {**OVERRIDES, "train.num_workers": workers}
    whole = train(tiny_config(chips("binary"), "binary", tmp_path / "a", overrides), progress=False, report=False)
    config = tiny_config(chips("binary"), "binary", tmp_path / "b", overrides)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=r"training stopped at epoch \d+, step \d+; .*last.ckpt is written"):
        train(config, progress=False, report=False, callbacks=[SigintAt(step)])
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
    last = tmp_path / "b" / "tiny-binary" / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last)
    assert (saved["epoch"], saved["global_step"]) == stopped_at  # after the batch the signal landed in
    resumed = train(config, resume=True, progress=False, report=False)
    assert resumed.steps == whole.steps == 2 * BATCHES_PER_EPOCH
    a, b = _weights(whole.last_checkpoint), _weights(resumed.last_checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in whole.history]
    assert [h["val/iou"] for h in resumed.history] == [h["val/iou"] for h in whole.history]
    assert _val_iou(tmp_path / "b" / "tiny-binary") == _val_iou(tmp_path / "a" / "tiny-binary")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_says_where_training_stopped(chips, tmp_path, monkeypatch, capsys, signum, code):
    """``eoseg train``: the stop is one line with the signal's exit status and what to do next."""
    from eoseg.cli.app import main
    from eoseg.cli.runtime import INTERRUPTED
    from eoseg.config import save_config

    def stopped(config, **_):
        raise TrainingInterrupted("training stopped at epoch 1, step 6; runs/x/last.ckpt is written: continue "
                                  "exactly with `eoseg train ... --resume`", signum)

    monkeypatch.setattr("eoseg.training.train.train", stopped)
    path = save_config(tiny_config(chips("binary"), "binary", tmp_path), tmp_path / "tiny.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(path), "--quiet"])
    captured = capsys.readouterr()
    assert exit_info.value.code == code, captured
    assert captured.err.strip().splitlines()[-2:] == [
        "training stopped at epoch 1, step 6; runs/x/last.ckpt is written: continue exactly with `eoseg train ... "
        "--resume`", INTERRUPTED]
