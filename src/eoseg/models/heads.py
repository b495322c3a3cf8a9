"""Model heads (dense, image-level, scalar, direction) and the activations applied outside the model.

Every head is built from a :class:`~eoseg.config.schema.HeadSpec`. Dense heads read the decoder output;
the others read the deepest encoder features. :func:`eoseg.config.activation.activation_of` decides, once for
the whole package, how a head's raw output is turned into predictions (the losses dispatch on the same answer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import ClassificationHead, SegmentationHead
from segmentation_models_pytorch.base.initialization import initialize_head
from torch import Tensor, nn

from eoseg.config.activation import activation_of
from eoseg.config.schema import HeadSpec, TaskSpec


class DenseHead(nn.Module):
    """Per-pixel head on the decoder output: dropout, smp's conv head, resize to the input size."""

    def __init__(self, in_channels: int, spec: HeadSpec, kernel_size: int = 3) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(spec.dropout) if spec.dropout else nn.Identity()
        self.head = SegmentationHead(in_channels, spec.channels, kernel_size=kernel_size)
        initialize_head(self.head)

    def forward(self, decoded: Tensor, size: tuple[int, int]) -> Tensor:
        out = self.head(self.dropout(decoded))
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


class PooledHead(nn.Module):
    """Image-level head on the deepest encoder features: global average pool, dropout, linear."""

    def __init__(self, in_channels: int, spec: HeadSpec) -> None:
        super().__init__()
        self.head = ClassificationHead(in_channels, spec.channels, pooling="avg", dropout=spec.dropout)
        initialize_head(self.head)

    def forward(self, deepest: Tensor) -> Tensor:
        return self.head(deepest)


class DirectionHead(nn.Module):
    """Global direction (geopose ``BasicOrientationHead``): pool, dropout, linear, SiLU, linear to (x, y)."""

    def __init__(self, in_channels: int, spec: HeadSpec) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(spec.dropout) if spec.dropout else nn.Identity(),
            nn.Linear(in_channels, in_channels),
            nn.SiLU(),
            nn.Linear(in_channels, 2),
        )

    def forward(self, deepest: Tensor) -> Tensor:
        return self.head(deepest)


def build_head(spec: HeadSpec, decoder_channels: int, deepest_channels: int, kernel_size: int) -> nn.Module:
    """The head module for ``spec.kind`` (dense heads read the decoder, the others the encoder)."""
    if spec.kind == "dense":
        return DenseHead(decoder_channels, spec, kernel_size)
    if spec.kind == "direction":
        return DirectionHead(deepest_channels, spec)
    return PooledHead(deepest_channels, spec)


def activate(head: HeadSpec, task: TaskSpec, tensor: Tensor) -> Tensor:
    """Apply the head's activation (see :func:`activation_of`) to its raw model output."""
    kind = activation_of(head, task)
    if kind == "sigmoid":
        return torch.sigmoid(tensor)
    if kind == "softmax":
        return torch.softmax(tensor, dim=1)
    if kind == "relu":
        return torch.relu(tensor)
    if kind == "normalize":
        return F.normalize(tensor, dim=1)
    return tensor
