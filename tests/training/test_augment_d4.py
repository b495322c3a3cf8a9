"""Augmentation through the real training loader: every D4 variant at its expected frequency, targets aligned.

The ``demo`` preset's flips and rotation (HorizontalFlip, VerticalFlip, RandomRotate90, each p=0.5) must
draw independently: with one shared seed per sample they fired together and the chips were never mirrored.
"""

from __future__ import annotations

import itertools

import lightning as L
import pytest
import torch

from eoseg.config import load_config
from eoseg.data.datamodule import ChipDataModule
from eoseg.data.dataset import ChipDataset
from eoseg.tasks.kinds import build_task_kind

from .chipdata import tiny_config

VARIANTS = [(k, mirrored) for mirrored in (False, True) for k in range(4)]  # the 8 elements of D4


def d4(x: torch.Tensor, k: int, mirrored: bool) -> torch.Tensor:
    """Variant ``(k, mirrored)`` of the last two axes: optional left-right mirror, then ``k`` quarter turns."""
    return torch.rot90(torch.flip(x, dims=[-1]) if mirrored else x, k, dims=(-2, -1))


def variant_of(moved: torch.Tensor, plain: torch.Tensor) -> tuple[int, bool]:
    """The one D4 variant that maps ``plain`` onto ``moved`` (the chips have no symmetry)."""
    found = [v for v in VARIANTS if torch.equal(d4(plain, *v), moved)]
    assert len(found) == 1, f"not exactly one D4 variant matches: {found}"
    return found[0]


def expected_frequencies() -> dict[tuple[int, bool], float]:
    """Distribution of D4 variants for independent HorizontalFlip, VerticalFlip, RandomRotate90 (p=0.5 each)."""
    reference = torch.arange(16.0).reshape(4, 4)
    rotations = {0: 0.5 + 0.5 / 4, 1: 0.5 / 4, 2: 0.5 / 4, 3: 0.5 / 4}
    out = dict.fromkeys(VARIANTS, 0.0)
    for h, v, k in itertools.product((0, 1), (0, 1), range(4)):
        x = torch.flip(reference, dims=[-1]) if h else reference
        x = torch.flip(x, dims=[-2]) if v else x
        out[variant_of(torch.rot90(x, k), reference)] += 0.25 * rotations[k]
    return out


def test_demo_augmentation_gives_every_d4_variant_with_targets_aligned(chips, tmp_path):
    augment = [spec.model_dump() for spec in load_config("demo").data.augment]
    assert [a["name"] for a in augment] == ["HorizontalFlip", "VerticalFlip", "RandomRotate90"]
    root = chips("binary")
    config = tiny_config(root, "binary", tmp_path, {"data.augment": augment})
    L.seed_everything(config.train.seed, verbose=False)
    kind = build_task_kind(config)
    datamodule = ChipDataModule(config, kind.head_targets, kind.directions)
    datamodule.setup("fit")
    plain = ChipDataset(root, datamodule.train_chips, datamodule.stats, config.data, kind.head_targets)
    references = [plain[i] for i in range(len(plain))]
    counts = dict.fromkeys(VARIANTS, 0)
    draws = 0
    for epoch in range(50):
        loader = datamodule.train_dataloader()
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            for j, index in enumerate(batch["index"].tolist()):
                ref = references[index]
                variant = variant_of(batch["image"][j], ref["image"])
                assert torch.equal(batch["valid"][j], d4(ref["valid"], *variant))
                assert torch.equal(batch["targets"]["mask"][j].nan_to_num(-1), d4(ref["targets"]["mask"], *variant)
                                   .nan_to_num(-1))
                counts[variant] += 1
                draws += 1
    expected = expected_frequencies()
    assert sum(expected.values()) == pytest.approx(1.0)
    assert sum(n for (k, mirrored), n in counts.items() if mirrored) > 0.4 * draws  # mirrored half the time
    for variant, p in expected.items():
        sd = (p * (1 - p) / draws) ** 0.5
        assert counts[variant] / draws == pytest.approx(p, abs=4 * sd), (variant, counts, draws)
