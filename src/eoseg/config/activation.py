"""Which activation turns a head's raw output into predictions (one answer for models, losses and tasks),
and which head is the main (mask) head.

Pure config logic (no torch), so every layer can ask it without importing the models.
"""

from __future__ import annotations

from typing import Literal

from eoseg.config.schema import HeadSpec, TaskSpec

Activation = Literal["sigmoid", "softmax", "identity", "relu", "normalize"]


def activation_of(head: HeadSpec, task: TaskSpec) -> Activation:
    """The activation that turns ``head``'s raw output into predictions.

    ``head.activation`` wins; otherwise: direction heads are L2-normalised, scalar heads and every head of a
    regression task are identity, multilabel tasks use sigmoid, and other tasks use sigmoid for one
    channel and softmax for several (binary, multiclass, change).
    """
    if head.kind == "direction":
        return "normalize" if head.activation is None else head.activation
    if head.activation is not None:
        return head.activation
    if head.kind == "scalar" or task.kind == "regression":
        return "identity"
    if task.kind == "multilabel" or head.channels == 1:
        return "sigmoid"
    return "softmax"


def main_head(heads: dict[str, HeadSpec]) -> str | None:
    """The head whose probabilities and mask are written: ``mask`` if dense, else the first dense head."""
    if "mask" in heads and heads["mask"].kind == "dense":
        return "mask"
    return next((name for name, head in heads.items() if head.kind == "dense"), None)
