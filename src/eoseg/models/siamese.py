"""Siamese encoder for co-registered pairs: one shared encoder over the pre and post halves of the input,
features fused per level by concatenation (then a 1x1 conv back to the level's width) or difference."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from eoseg.config.schema import SiameseSpec


def levels_read_by(encoder: nn.Module, decoder: nn.Module, in_channels: int) -> set[int]:
    """Feature levels whose values reach the decoder output, found by one small backward pass.

    Decoders read only some levels (Unet skips the input level, DeepLabV3 reads only the deepest); mixing
    layers on the other levels would hold parameters without gradients, which DDP refuses.
    """
    size = 8 * int(encoder.output_stride)  # the smallest size every smp decoder accepts (PAN pools 3 times)
    modes = [(m, m.training) for m in (encoder, decoder)]
    for module, _ in modes:
        module.eval()
    try:
        with torch.no_grad():
            features = encoder(
                torch.randn(1, in_channels, size, size, generator=torch.Generator().manual_seed(0))
            )
        probes = [f.detach().requires_grad_() for f in features]
        with torch.enable_grad():
            decoder(probes).float().sum().backward()
    finally:
        for module, training in modes:
            module.train(training)
    decoder.zero_grad(set_to_none=True)
    return {level for level, probe in enumerate(probes) if probe.grad is not None}


class SiameseEncoder(nn.Module):
    """Wraps an smp encoder: ``(B, 2C, H, W)`` -> fused feature list shaped like the encoder's own output.

    Both halves pass through the encoder as one batch, so they share weights and normalisation statistics.
    Exposes ``out_channels`` and ``output_stride`` like an smp encoder, so any smp decoder accepts it.
    With concatenation, only the levels in ``mixed`` get a 1x1 mixing conv; the others carry the post
    features (pass the levels the decoder reads, see :func:`levels_read_by`, plus the deepest level).
    """

    def __init__(self, encoder: nn.Module, spec: SiameseSpec, mixed: set[int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.fusion = spec.fusion
        self.out_channels = list(encoder.out_channels)
        self.output_stride = encoder.output_stride
        self.mixers = nn.ModuleDict()
        if self.fusion == "concat":
            for level in sorted(mixed):
                if self.out_channels[level] > 0:
                    channels = self.out_channels[level]
                    self.mixers[str(level)] = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        pre, post = x.chunk(2, dim=1)
        features = self.encoder(torch.cat([pre, post], dim=0))
        fused = []
        for level, feature in enumerate(features):
            f_pre, f_post = feature.chunk(2, dim=0)
            if self.fusion == "diff":
                fused.append(f_post - f_pre)
            elif str(level) in self.mixers:
                fused.append(self.mixers[str(level)](torch.cat([f_pre, f_post], dim=1)))
            else:
                fused.append(f_post)
        return fused
