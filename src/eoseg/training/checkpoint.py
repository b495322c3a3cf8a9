"""Self-describing checkpoints: Lightning's checkpoint plus an ``eoseg`` entry that says how to use it.

The ``eoseg`` entry holds plain data only: the resolved config, the prepared dataset's ``stats.json``
content (input expressions, band order per image, nodata, channel statistics), the class names, the
architecture, the per-epoch history and the random-number states for an exact ``--resume``. Files are
always read with ``torch.load(weights_only=True)``: a file that needs unpickling of arbitrary Python
objects is refused, never executed.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from eoseg.config.loader import config_from_dict, config_to_dict
from eoseg.config.schema import ExperimentConfig
from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path
from eoseg.models import LoadReport, build_model, load_init_state
from eoseg.models.bundle import ModelBundle

KEY = "eoseg"
FORMAT_VERSION = 1
MODEL_PREFIX = "model."


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


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an eoseg checkpoint safely; InputError for a missing file, another format or a pickle payload."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found; give the path of a .ckpt written by `eoseg train`")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise InputError(
                f"{path}: refused: the file carries a pickled Python object, which could run code when loaded; "
                f"eoseg only loads checkpoints of plain tensors and values (written by `eoseg train`)"
            ) from exc
        raise InputError(f"{path}: not a PyTorch checkpoint ({exc}); give a .ckpt written by `eoseg train`") from exc
    except Exception as exc:  # torch's unpickler fails on foreign bytes with many kinds of errors
        raise InputError(f"{path}: not a PyTorch checkpoint ({str(exc).splitlines()[0] if str(exc) else exc}); "
                         f"give a .ckpt written by `eoseg train`") from exc
    if not isinstance(checkpoint, dict) or KEY not in checkpoint or "state_dict" not in checkpoint:
        raise InputError(f"{path}: not an eoseg checkpoint (no '{KEY}' entry); give a .ckpt written by `eoseg train`")
    return checkpoint


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's own ``state_dict`` from a checkpoint (without the LightningModule prefix)."""
    return {k[len(MODEL_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(MODEL_PREFIX)}


def load_bundle(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> ModelBundle:
    """The model of a checkpoint in eval mode, with its config and band statistics."""
    checkpoint = read_checkpoint(path, map_location)
    entry = checkpoint[KEY]
    config = config_from_dict(entry["config"])
    spec = config.model.model_copy(update={"encoder_weights": None, "init_checkpoint": None})
    model = build_model(spec, config.task, int(entry["architecture"]["in_channels"]))
    model.load_state_dict(model_state(checkpoint))
    model.eval()
    extra = {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step"),
             "history": entry.get("history", [])}
    return ModelBundle(model, config, entry["stats"], source=str(path), extra=extra)


def init_from_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> LoadReport:
    """Start ``model`` from the weights of an eoseg checkpoint (``model.init_checkpoint``)."""
    return load_init_state(model, model_state(read_checkpoint(path)), f"model.init_checkpoint={path}")


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
