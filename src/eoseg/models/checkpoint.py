"""Reading eoseg checkpoints without Lightning: the model bundle a prediction needs, and init weights.

A checkpoint is Lightning's checkpoint plus an ``eoseg`` entry (written by
:func:`eoseg.training.checkpoint.describe`) that holds plain data only: the resolved config, the prepared
dataset's ``stats.json`` content, the class names, the architecture and the history. Files are always read
with ``torch.load(weights_only=True)``: a file that needs unpickling of arbitrary Python objects is refused,
never executed.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eoseg.config.loader import config_from_dict
from eoseg.errors import InputError
from eoseg.models.bundle import ModelBundle
from eoseg.models.factory import build_model
from eoseg.models.weights import LoadReport, load_init_state

KEY = "eoseg"
FORMAT_VERSION = 1
MODEL_PREFIX = "model."


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
