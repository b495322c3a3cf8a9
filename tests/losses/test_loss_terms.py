"""Loss terms: hand-computed values for eoseg's own formulas, ignore handling for the smp-backed ones."""

from __future__ import annotations

import math

import pytest
import torch

from eoseg.config.schema import HeadSpec, TaskSpec
from eoseg.losses import build_term

NAN = float("nan")
LN3 = math.log(3.0)


def term(name: str, head: HeadSpec, task: TaskSpec | None = None, **params):
    return build_term("h", head, task or TaskSpec(), name, params)


SOFTMAX2 = HeadSpec(channels=2, activation="softmax")
SIGMOID1 = HeadSpec(channels=1)


def test_softmax_focal_with_per_class_alpha_matches_hand_value() -> None:
    # pixel 1: p = (.5, .5), class 1 -> -(.5^2) * .75 * ln .5 ; pixel 2: p = (.25, .75), class 0 ->
    # -(.75^2) * .25 * ln .25 ; pixel 3 ignored
    logits = torch.tensor([[[[0.0, 0.0, 5.0]], [[0.0, LN3, -5.0]]]])
    target = torch.tensor([[[1, 0, 255]]])
    expected = (0.25 * 0.75 * math.log(2) + 0.5625 * 0.25 * math.log(4)) / 2
    loss = term("focal", SOFTMAX2, alpha=[0.25, 0.75], gamma=2.0)(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_per_sample_dice_matches_hand_value() -> None:
    logits = torch.tensor([[[[0.0, 0.0, 0.0, 0.0]]], [[[LN3, LN3, -LN3, 7.0]]]])
    target = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]], [[[1.0, 0.0, 0.0, NAN]]]])
    # sample 1: 2*1 / (2 + 2) = .5 ; sample 2 (last pixel ignored): 2*.75 / (1.75 + 1) = 6/11
    expected = ((1 - 0.5) + (1 - 6 / 11)) / 2
    assert term("dice", SIGMOID1, per_sample=True)(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_positive_only_dice_skips_empty_channels() -> None:
    multilabel = HeadSpec(channels=2)
    task = TaskSpec(kind="multilabel")
    logits = torch.tensor([[[[0.0, 0.0]], [[3.0, 3.0]]], [[[-2.0, 4.0]], [[LN3, LN3]]]])
    target = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]], [[[0.0, 0.0]], [[1.0, 1.0]]]])
    # (sample 1, channel 0): 2*.5 / (1 + 1) = .5 ; (sample 2, channel 1): 2*1.5 / (1.5 + 2) = 6/7
    expected = ((1 - 0.5) + (1 - 6 / 7)) / 2
    loss = term("dice_pos", multilabel, task)
    assert loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    empty = loss(logits.clone().requires_grad_(), torch.zeros_like(target))
    assert empty.item() == 0.0
    empty.backward()


def test_softmax_jaccard_is_one_minus_ratio_of_means() -> None:
    logits = torch.tensor([[[[0.0, LN3, 2.0]], [[0.0, 0.0, -1.0]]]])
    target = torch.tensor([[[1, 0, 255]]])
    # class 0: I = .75, U = .5 + 1 = 1.5 ; class 1: I = .5, U = 1 + .25 = 1.25
    expected = 1 - ((0.75 + 0.5) / 2) / ((1.5 + 1.25) / 2)
    assert term("jaccard", SOFTMAX2)(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_per_sample_jaccard_counts_empty_samples_as_zero() -> None:
    logits = torch.tensor([[[[0.0, 0.0, 4.0]]], [[[3.0, -3.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0, NAN]]], [[[0.0, 0.0, 0.0]]]])
    # sample 1: I = .5, |p| + |t| - I = 1 + 1 - .5 -> J = 1/3 ; sample 2: empty target -> 0
    loss = term("jaccard", SIGMOID1, per_sample=True, eps=1e-6)(logits, target)
    assert loss.item() == pytest.approx((1 - (0.5 + 1e-6) / (1.5 + 1e-6)) / 2, rel=1e-5)


def kl_binary(m: float) -> float:
    return m * math.log(2 * m) + (1 - m) * math.log(2 * (1 - m))


@pytest.mark.parametrize("head", [SIGMOID1, SOFTMAX2])
def test_kl_to_soft_labels_leaves_out_the_band(head: HeadSpec) -> None:
    logits = torch.zeros(1, head.channels, 1, 4)  # p = .5 everywhere
    target = torch.tensor([[[[0.9, 0.5, 0.2, NAN]]]])
    soft = term("kl", head, ignore_band=[0.4, 0.6])(logits, target)
    assert soft.item() == pytest.approx((kl_binary(0.9) + kl_binary(0.2)) / 2, rel=1e-5)
    hard = term("kl", head, ignore_band=[0.4, 0.6], hard=True)(logits, target)
    assert hard.item() == pytest.approx(math.log(2), rel=1e-5)


def test_regression_losses_skip_nan_and_match_hand_values() -> None:
    head = HeadSpec(channels=1)
    task = TaskSpec(kind="regression")
    pred = torch.zeros(1, 1, 1, 3)
    target = torch.tensor([[[[0.5, 3.0, NAN]]]])
    assert term("huber", head, task)(pred, target).item() == pytest.approx((0.125 + 2.5) / 2)
    assert term("huber", head, task, delta=5.0)(pred, target).item() == pytest.approx((0.125 + 4.5) / 2)
    assert term("mse", head, task)(pred, target).item() == pytest.approx((0.25 + 9.0) / 2)
    assert term("smooth_l1", head, task, beta=2.0)(pred, target).item() == pytest.approx((0.0625 + 2.0) / 2)


def test_cosine_direction_loss() -> None:
    pred = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.3, 0.1]])
    target = torch.tensor([[0.0, 1.0], [2.0, 2.0], [NAN, NAN]])
    assert term("cosine", HeadSpec(kind="direction"))(pred, target).item() == pytest.approx(0.5, abs=1e-6)


SMP_BACKED = [
    ("bce", SIGMOID1, {}),
    ("bce", SIGMOID1, {"pos_weight": 3.0, "smooth_factor": 0.1}),
    ("focal", SIGMOID1, {"alpha": 0.75}),
    ("dice", SIGMOID1, {"smooth": 1.0}),
    ("jaccard", SIGMOID1, {}),
    ("lovasz", SIGMOID1, {}),
    ("ce", SOFTMAX2, {"class_weights": [0.1, 2.0]}),
    ("dice", SOFTMAX2, {}),
    ("lovasz", SOFTMAX2, {}),
]


@pytest.mark.parametrize(
    ("name", "head", "params"),
    SMP_BACKED,
    ids=[f"{n}-{h.channels}ch-{i}" for i, (n, h, _) in enumerate(SMP_BACKED)],
)
def test_ignored_pixels_do_not_change_the_value(name: str, head: HeadSpec, params: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, head.channels, 1, 6, generator=gen)
    mask = (torch.rand(2, 1, 1, 6, generator=gen) > 0.5).float()
    loss = term(name, head, **params)
    full = mask if head.channels == 1 else mask.squeeze(1).long()
    ignored = full.clone()
    ignored[..., 4:] = NAN if head.channels == 1 else 255
    with_ignore = loss(logits, ignored)
    assert with_ignore.item() == pytest.approx(loss(logits[..., :4], full[..., :4]).item(), rel=1e-5)
    assert with_ignore.item() != pytest.approx(loss(logits, full).item())  # the ignored pixels would count


def test_one_binary_mask_feeds_sigmoid_and_softmax_heads() -> None:
    class_map = torch.tensor([[[1, 0, 255]]])
    float_mask = torch.tensor([[[[1.0, 0.0, NAN]]]])
    sig = torch.tensor([[[[2.0, -1.0, 9.0]]]])
    soft = torch.tensor([[[[0.0, 0.0, 9.0]], [[2.0, -1.0, -9.0]]]])
    bce = term("bce", SIGMOID1)
    ce = term("ce", SOFTMAX2)
    assert bce(sig, class_map).item() == pytest.approx(bce(sig, float_mask).item())
    assert ce(soft, float_mask).item() == pytest.approx(ce(soft, class_map).item())


def test_damage_ce_counts_only_building_pixels() -> None:
    head = HeadSpec(channels=5)
    task = TaskSpec(kind="change")
    logits = torch.randn(1, 5, 2, 2, requires_grad=True)
    damage = torch.tensor([[[3, 255], [255, 1]]])  # non-building pixels carry ignore_index
    loss = term("ce", head, task, class_weights=[1, 1, 3, 2, 2])
    value = loss(logits, damage)
    kept = logits.detach()[0, :, [0, 1], [0, 1]].T
    expected = torch.nn.functional.cross_entropy(
        kept, torch.tensor([3, 1]), weight=torch.tensor([1.0, 1, 3, 2, 2])
    )
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert logits.grad[0, :, 0, 1].abs().sum() == 0 and logits.grad[0, :, 1, 0].abs().sum() == 0
    no_buildings = loss(logits, torch.full_like(damage, 255))
    assert no_buildings.item() == 0.0 and no_buildings.requires_grad
