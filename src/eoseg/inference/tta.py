"""Test-time augmentation: D4 transforms and scales, applied to a batch and undone on every head.

A transform is a sequence of primitive steps on the last two (row, column) axes:
``h`` (flip columns), ``v`` (flip rows), ``t`` (transpose) and ``r`` (rotate 90 degrees
counter-clockwise, ``torch.rot90(k=1)``). Dense outputs are de-augmented by the inverse steps in
reverse order; direction vectors ``(x, y)`` in pixel axes (x along columns, y along rows, as the training
augmentations and the geopose recipe use them) are rotated back with the inverse of the transform's 2x2
matrix. Image-level outputs
(class scores, scalars) are invariant and pass through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

TtaMode = Literal["none", "flips", "d4"]

SIZE_MULTIPLE = 32
"""Scaled windows are rounded to a multiple of the encoders' output stride."""

# (x, y) matrices of the primitive steps, x = column axis, y = row axis (pointing down).
_STEP_MATRIX = {
    "h": torch.tensor([[-1.0, 0.0], [0.0, 1.0]]),
    "v": torch.tensor([[1.0, 0.0], [0.0, -1.0]]),
    "t": torch.tensor([[0.0, 1.0], [1.0, 0.0]]),
    "r": torch.tensor([[0.0, 1.0], [-1.0, 0.0]]),  # counter-clockwise on screen: right becomes up
}

MODES: dict[str, tuple[tuple[str, ...], ...]] = {
    "none": ((),),
    "flips": ((), ("h",), ("v",), ("h", "v")),
    "d4": (
        (),
        ("r",),
        ("r", "r"),
        ("r", "r", "r"),
        ("t",),
        ("t", "r"),
        ("t", "r", "r"),
        ("t", "r", "r", "r"),
    ),
}


def _apply_step(x: torch.Tensor, step: str, inverse: bool = False) -> torch.Tensor:
    if step == "h":
        return x.flip(-1)
    if step == "v":
        return x.flip(-2)
    if step == "t":
        return x.transpose(-2, -1)
    if step == "r":
        return torch.rot90(x, -1 if inverse else 1, dims=(-2, -1))
    raise ValueError(f"unknown TTA step {step!r}")


@dataclass(frozen=True)
class Transform:
    """One spatial transform (a sequence of primitive steps) at one scale."""

    steps: tuple[str, ...] = ()
    scale: float = 1.0

    @property
    def matrix(self) -> torch.Tensor:
        """2x2 matrix mapping a direction ``(x, y)`` of the original image to the augmented image."""
        m = torch.eye(2)
        for step in self.steps:
            m = _STEP_MATRIX[step] @ m
        return m

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Transform an image batch ``(B, C, H, W)``."""
        for step in self.steps:
            x = _apply_step(x, step)
        if self.scale != 1.0:
            size = [scaled_size(s, self.scale) for s in x.shape[-2:]]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def deaugment_dense(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Undo the transform on a dense output ``(B, C, h, w)``; ``size`` is the original ``(H, W)``."""
        if self.scale != 1.0:
            swapped = sum(step in "tr" for step in self.steps) % 2 == 1
            unscaled = (size[1], size[0]) if swapped else size
            y = F.interpolate(y, size=unscaled, mode="bilinear", align_corners=False)
        for step in reversed(self.steps):
            y = _apply_step(y, step, inverse=True)
        return y

    def deaugment_vector(self, d: torch.Tensor) -> torch.Tensor:
        """Rotate direction vectors ``(B, 2)`` predicted on the augmented image back to the original."""
        m = self.matrix.to(device=d.device, dtype=d.dtype)
        return d @ m  # row vectors: (M^-1 d^T)^T = d M, M orthogonal


def scaled_size(size: int, scale: float) -> int:
    """``size * scale`` rounded to a positive multiple of :data:`SIZE_MULTIPLE`."""
    return max(SIZE_MULTIPLE, int(round(size * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)


def tta_transforms(mode: TtaMode, scales: Sequence[float] = (1.0,)) -> list[Transform]:
    """All (scale, spatial transform) combinations of a TTA mode."""
    if mode not in MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; use one of {', '.join(MODES)}")
    return [Transform(steps, float(s)) for s in scales for steps in MODES[mode]]
