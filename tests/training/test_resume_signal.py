"""SIGINT during training: last.ckpt at the next clean point, and --resume ends bit-identical to a run never stopped.

Both cases of issue 10: the signal lands mid-epoch (the sampler's position, the loader's worker seeds and
the augmentation keys must all continue where they were) and in an epoch's last batch (the run stops after
that epoch's validation).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch

from eoseg.models.checkpoint import read_checkpoint
from eoseg.training.interrupt import STOPPING, TrainingInterrupted
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
@pytest.mark.parametrize(("command", "target"), [("train", "eoseg.training.train.train"),
                                                 ("self-train", "eoseg.selftrain.rounds.self_train")])
def test_cli_says_where_training_stopped(chips, tmp_path, monkeypatch, capsys, signum, code, command, target):
    """``eoseg train`` and ``eoseg self-train``: the stop is one line with the signal's exit status and what to do
    next (self-train said nothing and exited 130 on SIGTERM: the training's handler had taken the signal)."""
    from eoseg.cli.app import main
    from eoseg.cli.runtime import INTERRUPTED
    from eoseg.config import save_config

    def stopped(*_, **__):
        raise TrainingInterrupted("training stopped at epoch 1, step 6; runs/x/last.ckpt is written: continue "
                                  "exactly with `eoseg train ... --resume`", signum)

    monkeypatch.setattr(target, stopped)
    path = save_config(tiny_config(chips("binary"), "binary", tmp_path), tmp_path / "tiny.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(path), "--quiet"])
    captured = capsys.readouterr()
    assert exit_info.value.code == code, captured
    assert captured.err.strip().splitlines()[-2:] == [
        "training stopped at epoch 1, step 6; runs/x/last.ckpt is written: continue exactly with `eoseg train ... "
        "--resume`", INTERRUPTED]


class SigtermAt(L.Callback):
    """Sends SIGTERM to this process once: in the first validation batch, or in training batch ``step``."""

    def __init__(self, step: int | None = None) -> None:
        self.step = step
        self.sent = False

    def _send(self) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self._send()

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.step is None:
            self._send()


@pytest.mark.slow
@pytest.mark.parametrize(("step", "stopped_at"), [(None, (0, 4)), (3, (0, 4)), (1, (0, 2))],
                         ids=["in-validation", "epoch-last-batch", "mid-epoch"])
def test_sigterm_stops_like_sigint(chips, tmp_path, step, stopped_at):
    """SIGTERM (``timeout``, a scheduler) stops at the clean point SIGINT would, also where Lightning's own SIGTERM
    handler ended the run with a status-less SystemExit (exit 0) and no last.ckpt: during validation and after an
    epoch's last batch."""
    config = tiny_config(chips("binary"), "binary", tmp_path, {**OVERRIDES, "train.num_workers": 0})
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"training stopped at epoch \d+, step \d+; .*last.ckpt is written") \
            as stopped:
        train(config, progress=False, report=False, callbacks=[SigtermAt(step)])
    assert stopped.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is handler  # handlers restored
    saved = read_checkpoint(tmp_path / "tiny-binary" / "checkpoints" / "last.ckpt")
    assert (saved["epoch"], saved["global_step"]) == stopped_at


class TwoSigterms(L.Callback):
    """SIGTERM in each of the first two validation batches: the second comes before the clean point."""

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.current_epoch == 0 and batch_idx < 2:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_a_second_sigterm_interrupts_at_once_and_says_so(chips, tmp_path):
    """Lightning turned the second signal's KeyboardInterrupt into ``sys.exit(1)``: the CLI exited 1, silently."""
    config = tiny_config(chips("binary"), "binary", tmp_path, {**OVERRIDES, "train.num_workers": 0})
    with pytest.raises(TrainingInterrupted, match="training interrupted at once by a second signal; no checkpoint "
                                                  "was written yet: train again") as stopped:
        train(config, progress=False, report=False, callbacks=[TwoSigterms()])
    assert stopped.value.signum == signal.SIGTERM
    assert not (tmp_path / "tiny-binary" / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_eoseg_train_killed_by_sigterm_stops_with_last_ckpt(chips, tmp_path):
    """``timeout``/a scheduler: SIGTERM to ``eoseg train`` once its first checkpoint is written (so training is
    under way, wherever in an epoch or its validation the signal lands): the Ctrl+C line, exit 143, a
    ``last.ckpt`` that reads back and nothing half-written beside it. Before, a SIGTERM in validation or at an
    epoch's end exited 0 without a word or a checkpoint."""
    from eoseg.cli.runtime import INTERRUPTED
    from eoseg.config import save_config

    config = tiny_config(chips("binary"), "binary", tmp_path / "runs", {"train.epochs": 1000, "train.batch_size": 2})
    path = save_config(config, tmp_path / "tiny.yaml")
    folder = tmp_path / "runs" / "tiny-binary" / "checkpoints"
    process = subprocess.Popen([sys.executable, "-m", "eoseg", "train", str(path), "--quiet"], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        while not (folder / "last.ckpt").is_file() and process.poll() is None:
            time.sleep(0.05)  # polling for the file, not a fixed wait
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=300)
    finally:
        process.kill()
    lines = err.strip().splitlines()
    assert process.returncode == 143, err
    assert lines[-1] == INTERRUPTED and "Traceback" not in err
    assert lines[-3] == STOPPING  # said at once, when the signal came
    assert lines[-2].startswith("training stopped at epoch ") and lines[-2].endswith(
        f"{folder / 'last.ckpt'} is written: continue exactly with `eoseg train ... --resume`"), err
    assert "Received SIGTERM" not in err  # Lightning's handler did not see it
    saved = read_checkpoint(folder / "last.ckpt")
    assert saved["global_step"] >= 1
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]  # no temporaries left
