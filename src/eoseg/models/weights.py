"""Load weights from local files: encoder weights (a torch state dict or .safetensors) and the state dict
of an init checkpoint. Files are read without unpickling objects; nothing is ever downloaded.

Parameter names are matched after aligning common prefixes (``encoder.`` of an smp model, ``model.`` of a
Lightning module or of a timm encoder). Encoder weights made for another number of input channels (RGB
weights for SAR or multispectral inputs) have their first convolution adapted with timm's
``adapt_input_conv`` (channels repeated or summed, rescaled); an init checkpoint trained on other bands
is refused with a message that says what to do.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from torch import Tensor, nn

from eoseg.errors import ConfigError, InputError

_STRIP = ("", "model.", "encoder.", "model.encoder.", "state_dict.")
_ADD = ("", "model.")


@dataclass
class LoadReport:
    """What a weight load did: parameters loaded, model parameters left as they were, file entries unused."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # first conv adapted to the model's input channels

    def summary(self) -> str:
        """One line for logs."""
        adapted = f", {', '.join(self.adapted)} adapted to the input channels" if self.adapted else ""
        return (
            f"{len(self.loaded)} tensors loaded, {len(self.missing)} kept as initialised, "
            f"{len(self.mismatched)} skipped for shape, {len(self.unexpected)} unused{adapted}"
        )


def content_problem(path: Path) -> str | None:
    """What is plainly wrong with a weights file's bytes (empty, text, a damaged zip), in words; else None."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if size == 0:
        return "the file is empty: 0 bytes"
    if head.startswith(b"PK"):
        if zipfile.is_zipfile(path):
            return None
        return f"the file is damaged or incomplete: {size} bytes, a copy or download that did not finish?"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c.isspace() for c in text):
        return f"it is a text file: {' '.join(text.split())[:40]!r}..."
    return None


def _unknown(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())
    readable = detail and not detail.isdigit() and "Errno" not in detail
    return f"unknown content ({type(exc).__name__}{': ' + detail[:80] if readable else ''})"


def torch_load(path: Path, what: str, fix: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as one :class:`InputError` line.

    ``what`` names the expected file ("a PyTorch checkpoint"), ``fix`` says what to give instead. A file that
    needs pickled Python objects is refused (it could run code when loaded), never unpickled; an empty, text
    or truncated file says so (torch's own errors say ``101`` or nothing).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch's unpickler fails on foreign bytes with KeyError, EOFError, OSError, ...
        problem = content_problem(path)
        pickled = isinstance(exc, pickle.UnpicklingError) and (
            "weights_only" in str(exc) or "Unsupported global" in str(exc))
        if problem is None and pickled:
            raise InputError(
                f"{path}: refused to load, the file carries pickled Python objects, which could run code when "
                f"loaded; {fix}"
            ) from exc
        raise InputError(f"{path}: not {what} ({problem or _unknown(exc)}); {fix}") from exc


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file or a torch file (``weights_only``; a ``state_dict`` entry is used).

    Raises InputError for a missing, empty or foreign file, a pickle payload, or a file that holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: weights file not found; check the path (model.encoder_weights / init_checkpoint)"
        )
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            reason = content_problem(path) or _unknown(exc)
            raise InputError(f"{path}: not a readable safetensors file ({reason}); re-export the weights") from exc
    payload: Any = torch_load(path, "a torch weights file", "save a plain state dict (torch.save(model.state_dict(), "
                              "path)) or a .safetensors file")
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not any(isinstance(v, Tensor) for v in payload.values()):
        raise InputError(f"{path}: holds no state dict of tensors; save torch.save(model.state_dict(), path)")
    return {k: v for k, v in payload.items() if isinstance(v, Tensor)}


def _align(state: dict[str, Tensor], target_keys: set[str]) -> dict[str, Tensor]:
    """Rename ``state`` by the prefix change (strip one, add one) that matches most of ``target_keys``."""
    best, best_hits = state, -1
    for strip in _STRIP:
        for add in _ADD:
            renamed = {add + k[len(strip) :]: v for k, v in state.items() if k.startswith(strip)}
            hits = len(target_keys & renamed.keys())
            if hits > best_hits:
                best, best_hits = renamed, hits
    return best


def first_conv(module: nn.Module) -> tuple[str, int]:
    """(parameter name of the first convolution's weight, its input channels) in ``module``."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            return f"{name}.weight" if name else "weight", sub.in_channels
    raise ValueError(f"{type(module).__name__} has no Conv2d")


def _check_in_channels(module: nn.Module, state: dict[str, Tensor], source: str, what: str) -> None:
    key, expected = first_conv(module)
    if key in state and state[key].ndim == 4 and state[key].shape[1] != expected:
        found = state[key].shape[1]
        raise ConfigError(
            f"{source}: {what} expects {found} input channels (first conv {key}) "
            f"but the model has {expected} "
            f"(from data.inputs); use weights made for {expected} channels, change data.inputs to {found} "
            "channels, or leave the option unset to start from random weights"
        )


def match_state(module: nn.Module, state: dict[str, Tensor]) -> LoadReport:
    """Compare ``state`` with the module's own tensors by name and shape (loads nothing)."""
    own = module.state_dict()
    report = LoadReport(unexpected=sorted(set(state) - set(own)))
    for key, value in own.items():
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                report.missing.append(key)
        elif state[key].shape != value.shape:
            report.mismatched.append(key)
        else:
            report.loaded.append(key)
    return report


def _apply(module: nn.Module, state: dict[str, Tensor], report: LoadReport) -> None:
    module.load_state_dict({k: state[k] for k in report.loaded}, strict=False)


def load_encoder_weights(encoder: nn.Module, path: Path) -> LoadReport:
    """Load a local weights file into ``encoder`` (a model's backbone) (every encoder tensor must be present and fit).

    A first convolution made for another channel count is adapted (``timm.models.adapt_input_conv``) and
    listed in ``report.adapted``. Raises InputError for an unreadable file, ConfigError when the file does
    not hold this encoder's parameters (the encoder is then left untouched).
    """
    source = f"model.encoder_weights={path}"
    state = _align(read_state_dict(path), set(encoder.state_dict()))
    key, expected = first_conv(encoder)
    adapted = key in state and state[key].ndim == 4 and state[key].shape[1] != expected
    if adapted:
        state[key] = adapt_input_conv(expected, state[key])
    report = match_state(encoder, state)
    report.adapted = [key] if adapted else []
    if report.missing or report.mismatched:
        bad = (report.missing + report.mismatched)[:3]
        raise ConfigError(
            f"{source}: the file does not fit encoder {type(encoder).__name__} "
            f"({len(report.missing)} tensors "
            f"missing, {len(report.mismatched)} of another shape, e.g. {', '.join(bad)}); use weights saved "
            "from the same encoder as model.encoder"
        )
    _apply(encoder, state, report)
    return report


def load_init_state(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> LoadReport:
    """Start ``model`` from an earlier model's ``state_dict`` (``source`` names it in messages).

    Tensors are matched by name; those of another shape (a head with other channels) and those the file
    lacks (a new head) keep their initial values and are listed in the report. Raises ConfigError when the
    input channels differ or when no tensor matches at all.
    """
    state = _align(dict(state_dict), set(model.state_dict()))
    _check_in_channels(model, state, source, "the init checkpoint")
    report = match_state(model, state)
    if not report.loaded:
        raise ConfigError(
            f"{source}: no parameter of the init checkpoint matches this model; it was trained with another "
            "model.arch / model.encoder; use a checkpoint of the same architecture "
            "or unset model.init_checkpoint"
        )
    _apply(model, state, report)
    return report
