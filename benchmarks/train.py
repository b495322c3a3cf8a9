"""Benchmark ``eoseg train``'s data pipeline: training throughput (chips/s) against in-memory tensors.

Generates a synthetic town (``eoseg.demo``), prepares it into 256 px chips, and trains a resnet18-Unet
for the same number of steps twice in one run, with the same model, batch size, loss and optimiser:

- pipeline: chips read from disk by the DataLoader workers, band math, normalisation, augmentation
  (flips, rot90, brightness/contrast), per-head targets;
- baseline: the same samples already collated in memory (no reading, no augmentation, no workers).

Throughput is taken over the steps after a warm-up; the modes alternate for a few rounds (a shared machine's
load then hits both alike) and the medians are compared: the ratio pipeline / baseline is the share of the
model's speed that the data pipeline keeps (target >= 0.9 with 2 workers on 2 cores).

Usage: uv run python benchmarks/train.py [--size 256] [--batch 8] [--steps 4] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from eoseg.config.loader import validate_config
from eoseg.data.datamodule import ChipDataModule
from eoseg.data.prepare import prepare
from eoseg.demo.town import make_town
from eoseg.tasks.kinds import build_task_kind
from eoseg.training.module import SegmentationTask

WARMUP = 2


class StepTimer(L.Callback):
    """Wall time of the training steps after ``WARMUP`` steps."""

    def __init__(self) -> None:
        self.start = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == WARMUP and not self.start:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.start:
            self.steps += 1

    def chips_per_s(self, batch: int) -> float:
        return self.steps * batch / (time.perf_counter() - self.start)


def config_for(folder: Path, size: int, batch: int, workers: int, steps: int):
    return validate_config({
        "name": "bench",
        "data": {
            "root": str(folder / "chips"), "scenes_file": str(folder / "town" / "train.csv"),
            "bands": {"image": ["red", "green", "blue"]}, "targets": {"mask": {"kind": "vector"}},
            "chips": {"size": size, "overlap": 0}, "folds": 2,
            "augment": [{"name": "HorizontalFlip"}, {"name": "VerticalFlip"}, {"name": "RandomRotate90"},
                        {"name": "RandomBrightnessContrast", "p": 0.3}],
        },
        "model": {"arch": "Unet", "encoder": "resnet18"},
        "loss": {"mask": {"bce": 1.0, "dice": 1.0}},
        "train": {"out": str(folder / "runs"), "epochs": 1000, "max_steps": steps + WARMUP, "batch_size": batch,
                  "num_workers": workers, "accelerator": "auto", "devices": 1, "tensorboard": False},
    })


def fit(config, module: SegmentationTask, loader: DataLoader) -> float:
    timer = StepTimer()
    trainer = L.Trainer(accelerator=config.train.accelerator, devices=1, max_steps=config.train.max_steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return timer.chips_per_s(config.train.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each mode (median taken)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    speeds: dict[str, list[float]] = {"pipeline": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_town(folder / "town", seed=0, n_scenes=3, size=1024)
        config = config_for(folder, args.size, args.batch, args.workers, args.steps)
        prepared = prepare(config, progress=False)
        kind = build_task_kind(config)
        data = ChipDataModule(config, kind.head_targets, kind.directions)
        data.setup("fit")
        memory = list(DataLoader(data.train_set, batch_size=args.batch, shuffle=True, drop_last=True))
        batches = [memory[i % len(memory)] for i in range(args.steps + WARMUP)]
        for _ in range(args.rounds):  # alternate the modes so that a change in machine load hits both alike
            for mode in speeds:
                L.seed_everything(0, verbose=False)
                loader = data.train_dataloader() if mode == "pipeline" else DataLoader(batches, batch_size=None)
                speeds[mode].append(fit(config, SegmentationTask(config, data.stats), loader))
    pipeline, baseline = statistics.median(speeds["pipeline"]), statistics.median(speeds["baseline"])
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"resnet18-Unet, {args.size} px, batch {args.batch}, {args.rounds} rounds x {args.steps} timed steps, "
          f"{device}; {prepared.chips} chips on disk")
    print(f"pipeline (disk, {args.workers} workers, augmentation, normalisation): {pipeline:8.2f} chips/s "
          f"(rounds: {', '.join(f'{v:.2f}' for v in speeds['pipeline'])})")
    print(f"baseline (same batches in memory):                         {baseline:8.2f} chips/s "
          f"(rounds: {', '.join(f'{v:.2f}' for v in speeds['baseline'])})")
    print(f"ratio pipeline / baseline (medians): {pipeline / baseline:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
