"""How a head's output is read by the losses (its mode) and how targets are put into one form per mode.

Modes: ``binary`` (one sigmoid channel), ``multilabel`` (several sigmoid channels), ``multiclass``
(softmax), ``regression`` (identity / relu), ``direction`` (L2-normalised 2-vector).
Float targets mark ignored values with NaN; class targets with ``task.ignore_index``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from eoseg.config.activation import activation_of
from eoseg.config.schema import HeadSpec, TaskSpec

Mode = Literal["binary", "multilabel", "multiclass", "regression", "direction"]


def head_mode(head: HeadSpec, task: TaskSpec) -> Mode:
    """The loss mode of a head, from the activation the model package gives it."""
    activation = activation_of(head, task)
    if activation == "normalize":
        return "direction"
    if activation == "sigmoid":
        return "binary" if head.channels == 1 else "multilabel"
    if activation == "softmax":
        return "multiclass"
    return "regression"


def float_target(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """(target as float shaped like ``logits`` with ignored values set to 0, bool mask of valid values).

    Accepts a float target shaped like ``logits`` (NaN = ignore), or, for one channel, a class map without
    the channel axis (long with ``ignore_index``, or float with NaN): the same binary mask can feed a
    1-channel sigmoid head and a 2-channel softmax head.
    """
    if not target.is_floating_point():
        target = target.to(logits.dtype).masked_fill(target == ignore_index, float("nan"))
    if target.ndim == logits.ndim - 1 and logits.shape[1] == 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match head output {tuple(logits.shape)}"
        )
    valid = torch.isfinite(target)
    return torch.where(valid, target, torch.zeros_like(target)).to(logits.dtype), valid


def class_target(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Class indices ``(B, *spatial)`` (long, ``ignore_index`` = ignore) for a softmax head's ``logits``.

    Accepts a long class map, or a float map with NaN for ignore (a binary mask, with or without a
    channel axis of size one).
    """
    if target.is_floating_point():
        if target.ndim == logits.ndim:
            target = target.squeeze(1)
        target = torch.nan_to_num(target, nan=float(ignore_index)).round().long()
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"class target shape {tuple(target.shape)} does not match head output {tuple(logits.shape)}"
        )
    return target.long()
