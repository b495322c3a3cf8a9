"""Writing self-describing checkpoints: Lightning's checkpoint plus an ``eoseg`` entry that says how to use it.

The ``eoseg`` entry holds plain data only: the resolved config, the prepared dataset's ``stats.json``
content (input expressions, band order per image, nodata, channel statistics), the class names, the
architecture, the per-epoch history and the random-number states for an exact ``--resume``. Files are
read back by :mod:`eoseg.models.checkpoint` (no Lightning needed to predict).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from eoseg.config.loader import config_to_dict
from eoseg.config.schema import ExperimentConfig
from eoseg.geo.atomic import atomic_path
from eoseg.models.checkpoint import FORMAT_VERSION


def describe(config: ExperimentConfig, stats: dict[str, Any], history: list[dict[str, float]]) -> dict[str, Any]:
    """The ``eoseg`` entry of a checkpoint (plain, weights-only-loadable data)."""
    return {
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(config),
        "stats": stats,
        "inputs": list(stats["inputs"]),
        "bands": {k: list(v) for k, v in stats["bands"].items()},
        "classes": list(config.data.classes),
        "architecture": {
            "arch": config.model.arch,
            "encoder": config.model.encoder,
            "in_channels": len(stats["inputs"]),
            "heads": {name: head.model_dump(mode="json") for name, head in config.model.heads.items()},
            "siamese": config.model.siamese.model_dump(mode="json") if config.model.siamese else None,
        },
        "history": [dict(h) for h in history],
        "rng": rng_state(),
    }


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) random states as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class LastCheckpoint(ModelCheckpoint):
    """Writes ``<dirpath>/last.ckpt`` at the end of every epoch (what ``--resume`` continues from)."""

    def __init__(self, dirpath: str | os.PathLike[str]) -> None:
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)

    @property
    def path(self) -> Path | None:
        """The last checkpoint written (or restored on resume), None before the first."""
        return Path(self.best_model_path) if self.best_model_path else None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint writer that renames a complete temporary file onto the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
