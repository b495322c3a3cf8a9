"""build_criterion: weighted sums per head from config.loss, parts keyed head/name, config errors."""

from __future__ import annotations

import pytest
import torch

from eoseg.config import config_from_dict
from eoseg.errors import ConfigError
from eoseg.losses import LOSSES, build_criterion

OPEN_CITIES = {
    "model": {
        "heads": {
            "mask": {"kind": "dense", "channels": 2, "activation": "softmax"},
            "dice": {"kind": "dense", "channels": 1, "target": "mask"},
            "image_class": {"kind": "image_class", "channels": 2},
        }
    },
    "loss": {
        "mask": {"focal": {"weight": 1.0, "alpha": [0.25, 0.75], "gamma": 2.0}, "jaccard": 2.0},
        "dice": {"dice": 0.1},
        "image_class": {"ce": 0.5},
    },
}


def test_total_is_the_weighted_sum_of_the_parts() -> None:
    criterion = build_criterion(config_from_dict(OPEN_CITIES))
    gen = torch.Generator().manual_seed(1)
    outputs = {
        "mask": torch.randn(2, 2, 8, 8, generator=gen, requires_grad=True),
        "dice": torch.randn(2, 1, 8, 8, generator=gen, requires_grad=True),
        "image_class": torch.randn(2, 2, generator=gen, requires_grad=True),
    }
    mask = (torch.rand(2, 8, 8, generator=gen) > 0.5).long()
    targets = {"mask": mask, "dice": mask.unsqueeze(1).float(), "image_class": mask.flatten(1).amax(1)}
    total, parts = criterion(outputs, targets)
    assert list(parts) == ["mask/focal", "mask/jaccard", "dice/dice", "image_class/ce"]
    expected = (
        parts["mask/focal"]
        + 2.0 * parts["mask/jaccard"]
        + 0.1 * parts["dice/dice"]
        + 0.5 * parts["image_class/ce"]
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(not p.requires_grad for p in parts.values())
    total.backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in outputs.values())
    with pytest.raises(KeyError, match="image_class"):
        criterion(outputs, {"mask": mask, "dice": targets["dice"]})


def test_every_registered_name_is_listed() -> None:
    assert list(LOSSES) == [
        "bce",
        "ce",
        "focal",
        "dice",
        "dice_pos",
        "jaccard",
        "lovasz",
        "kl",
        "huber",
        "mse",
        "smooth_l1",
        "cosine",
    ]


def config_with(loss: dict) -> dict:
    return {**OPEN_CITIES, "loss": loss}


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (
            {"mask": {"focl": 1.0}},
            r"loss.mask='focl' is not a known loss; did you mean 'focal'\? valid: bce, ce, focal, "
            r"dice, dice_pos, jaccard, lovasz, kl, huber, mse, smooth_l1, cosine",
        ),
        (
            {"mask": {"focal": {"gama": 2}}},
            r"loss.mask.focal: unknown parameter\(s\) gama; valid: weight, gamma, alpha",
        ),
        (
            {"mask": {"focal": {"alpha": [0.2, 0.3, 0.5]}}},
            r"loss.mask.focal: alpha has 3 values but the head has 2",
        ),
        (
            {"mask": {"focal": {"alpha": 0.25}}},
            r"loss.mask.focal: alpha for a softmax head needs one value per class, "
            r"e.g. \[0.25, 0.75\]",
        ),
        (
            {"dice": {"ce": 1.0}},
            r"loss.dice.ce: ce does not apply to head 'dice' \(binary: 1 channel\(s\), dense\); it needs "
            r"a multiclass head; losses for this head: bce, dice, dice_pos, focal, jaccard, kl, lovasz",
        ),
        ({"mask": {"kl": {"hard": True}}}, r"loss.mask.kl: hard needs ignore_band"),
        ({"image_class": {"huber": 1.0}}, r"loss.image_class.huber: huber does not apply"),
    ],
)
def test_bad_loss_config_names_the_option(loss: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_criterion(config_from_dict(config_with(loss)))
