"""Reading eoseg checkpoints without Lightning: the model bundle a prediction needs, and init weights.

A checkpoint is Lightning's checkpoint plus an ``eoseg`` entry (written by
:func:`eoseg.training.checkpoint.describe`) that holds plain data only: the resolved config, the prepared
dataset's ``stats.json`` content, the class names, the architecture and the history. Files are always read
with ``torch.load(weights_only=True)``: a file that needs unpickling of arbitrary Python objects is refused,
never executed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eoseg.config.loader import config_from_dict
from eoseg.config.schema import ExperimentConfig
from eoseg.data.stats import DatasetStats
from eoseg.errors import EosegError, InputError, require_models
from eoseg.models.bundle import ModelBundle
from eoseg.models.factory import build_model
from eoseg.models.weights import LoadReport, first_conv, load_init_state, match_state, torch_load

KEY = "eoseg"
FORMAT_VERSION = 1
MODEL_PREFIX = "model."


FIX = "give a .ckpt written by `eoseg train`"
EDITED = "the file was edited or mixed from different runs: use a .ckpt as `eoseg train` wrote it"


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an eoseg checkpoint safely; InputError for a missing file, another format or a pickle payload."""
    path = Path(path)
    require_models([path])
    checkpoint = torch_load(path, "a PyTorch checkpoint", FIX, map_location)
    if not isinstance(checkpoint, dict) or KEY not in checkpoint or "state_dict" not in checkpoint:
        raise InputError(f"{path}: not an eoseg checkpoint (no '{KEY}' entry); {FIX}")
    return checkpoint


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's own ``state_dict`` from a checkpoint (without the LightningModule prefix)."""
    return {k[len(MODEL_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(MODEL_PREFIX)}


def _entry(path: Path, checkpoint: dict[str, Any]) -> tuple[ExperimentConfig, int, DatasetStats]:
    """The config, input channel count and band statistics of a checkpoint's ``eoseg`` entry, checked."""
    entry = checkpoint[KEY]
    missing = [k for k in ("config", "architecture", "stats") if not isinstance(entry, dict) or k not in entry]
    if missing:
        raise InputError(f"{path}: the checkpoint's '{KEY}' entry has no {', '.join(missing)}; {EDITED}")
    try:
        config = config_from_dict(entry["config"])
    except EosegError as exc:
        raise InputError(f"{path}: the checkpoint's config is not valid: {exc}") from exc
    try:
        in_channels = int(entry["architecture"]["in_channels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the checkpoint's 'architecture' entry has no input channel count "
                         f"({type(exc).__name__}: {exc}); {EDITED}") from exc
    try:
        stats = DatasetStats.from_dict(entry["stats"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: the checkpoint's band statistics ('stats') are incomplete "
                         f"({type(exc).__name__}: {exc}); {EDITED}") from exc
    return config, in_channels, stats


def _check_weights(path: Path, model: nn.Module, state: dict[str, torch.Tensor], config: ExperimentConfig,
                   in_channels: int, stats: DatasetStats) -> None:
    """Refuse weights that do not fit the model the checkpoint's config describes, or its statistics."""
    key, expected = first_conv(model)
    if key in state and state[key].ndim == 4 and state[key].shape[1] != expected:
        raise InputError(f"{path}: the weights take {state[key].shape[1]} input channel(s) (first conv {key}) but "
                         f"the checkpoint's architecture says {in_channels}; {EDITED}")
    report = match_state(model, state)
    if report.missing or report.mismatched or report.unexpected:
        bad = (report.missing + report.mismatched + report.unexpected)[:2]
        spec = config.model
        raise InputError(
            f"{path}: the weights do not fit the model its config describes ({spec.arch} with encoder "
            f"{spec.encoder}, {in_channels} input channel(s)): {len(report.missing)} tensor(s) missing, "
            f"{len(report.mismatched)} of another shape, {len(report.unexpected)} unknown (e.g. {', '.join(bad)}); "
            f"{EDITED}"
        )
    if len(stats.inputs) != in_channels or len(stats.channels) != in_channels:
        raise InputError(f"{path}: the band statistics (stats) describe {len(stats.inputs)} input channel(s) "
                         f"{stats.inputs} and {len(stats.channels)} channel statistics but the weights take "
                         f"{in_channels}; {EDITED}")


def load_bundle(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> ModelBundle:
    """The model of a checkpoint in eval mode, with its config and band statistics.

    The ``eoseg`` entry is checked against the weights first: a config, channel count or ``stats`` entry
    that does not fit them is an :class:`InputError` naming the file (never a traceback).
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location)
    config, in_channels, stats = _entry(path, checkpoint)
    entry = checkpoint[KEY]
    spec = config.model.model_copy(update={"encoder_weights": None, "init_checkpoint": None})
    try:
        model = build_model(spec, config.task, in_channels)
    except EosegError as exc:
        raise InputError(f"{path}: the checkpoint's config is not valid: {exc}") from exc
    state = model_state(checkpoint)
    _check_weights(path, model, state, config, in_channels, stats)
    model.load_state_dict(state)
    model.eval()
    extra = {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step"),
             "history": entry.get("history", [])}
    return ModelBundle(model, config, entry["stats"], source=str(path), extra=extra)


def init_from_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> LoadReport:
    """Start ``model`` from the weights of an eoseg checkpoint (``model.init_checkpoint``)."""
    return load_init_state(model, model_state(read_checkpoint(path)), f"model.init_checkpoint={path}")
