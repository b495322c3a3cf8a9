"""Loss terms: one class per loss name, each working on the modes it supports (see ``targets.head_mode``).

segmentation-models-pytorch provides BCE, dice, Jaccard, Lovasz and binary focal; eoseg adds class-weighted
CE with ignore (torch), softmax focal with per-class alpha, per-sample and positive-only dice, the UNOSAT
softmax Jaccard, KL to soft labels with an ignored band, masked regression losses and the cosine loss.
Every term skips ignored values and returns a zero (with a gradient path) when nothing is valid.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from segmentation_models_pytorch import losses as smp_losses
from segmentation_models_pytorch.losses._functional import focal_loss_with_logits
from torch import Tensor, nn

from eoseg.config.schema import HeadSpec
from eoseg.losses.functional import (
    cosine_distance,
    per_sample_jaccard_loss,
    ratio_jaccard,
    soft_dice_scores,
    soft_kl,
    softmax_focal,
)
from eoseg.losses.targets import Mode, class_target, float_target

IGNORED = -1.0
"""Stand-in value for ignored float targets handed to smp losses (with ``ignore_index=IGNORED``)."""


class LossTerm(nn.Module):
    """Base: prepares the target for the head's mode, then calls :meth:`compute` if anything is valid."""

    modes: ClassVar[tuple[Mode, ...]] = ()

    def __init__(self, head: HeadSpec, mode: Mode, ignore_index: int) -> None:
        super().__init__()
        self.channels = head.channels
        self.mode = mode
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.mode == "multiclass":
            prepared = class_target(logits, target, self.ignore_index)
            valid = prepared != self.ignore_index
        else:
            prepared, valid = float_target(logits, target, self.ignore_index)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return self.compute(logits, prepared, valid)

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        raise NotImplementedError

    def _per_class(self, name: str, values: float | list[float] | None) -> Tensor | None:
        """A per-class tensor from a config list, checked against the head's channel count."""
        if values is None:
            return None
        values = [values] * self.channels if isinstance(values, int | float) else list(values)
        if len(values) != self.channels:
            raise ValueError(f"{name} has {len(values)} values but the head has {self.channels} channels")
        return torch.tensor(values, dtype=torch.float32)

    def _smp_target(self, target: Tensor, valid: Tensor) -> Tensor:
        """Float targets with ignored values set to :data:`IGNORED`, class targets unchanged."""
        return (
            target
            if self.mode == "multiclass"
            else torch.where(valid, target, torch.full_like(target, IGNORED))
        )

    def _smp_ignore(self) -> float:
        return self.ignore_index if self.mode == "multiclass" else IGNORED

    def _probs_and_onehot(
        self, logits: Tensor, target: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Probabilities, targets and valid mask flattened to ``(B, K, N)`` (one-hot for softmax heads)."""
        if self.mode == "multiclass":
            probs = logits.softmax(dim=1)
            safe = torch.where(valid, target, torch.zeros_like(target))
            target = F.one_hot(safe, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
            valid = valid.unsqueeze(1).expand_as(probs)
        else:
            probs = logits.sigmoid()
        b, k = probs.shape[:2]
        return probs.reshape(b, k, -1), target.reshape(b, k, -1), valid.reshape(b, k, -1)


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    return values[valid].mean()


class BCE(LossTerm):
    """Binary cross-entropy (smp ``SoftBCEWithLogitsLoss``), per-channel ``pos_weight``, label smoothing."""

    modes = ("binary", "multilabel")

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        pos_weight: float | list[float] | None = None,
        smooth_factor: float | None = None,
    ) -> None:
        super().__init__(head, mode, ignore_index)
        weight = self._per_class("pos_weight", pos_weight)
        if weight is not None and head.kind == "dense":
            weight = weight.view(-1, 1, 1)
        self.loss = smp_losses.SoftBCEWithLogitsLoss(
            pos_weight=weight, smooth_factor=smooth_factor, reduction="none"
        )

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        return _masked_mean(self.loss(logits, target), valid)


class CE(LossTerm):
    """Cross-entropy (torch) with per-class ``class_weights``, ``ignore_index`` and ``label_smoothing``.

    With class weights the mean is weighted (divides by the summed weights of valid pixels), as in torch.
    """

    modes = ("multiclass",)

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(head, mode, ignore_index)
        self.register_buffer("class_weights", self._per_class("class_weights", class_weights))
        self.label_smoothing = float(label_smoothing)

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        return F.cross_entropy(
            logits,
            target,
            weight=self.class_weights,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class Focal(LossTerm):
    """Focal loss: sigmoid heads via smp (``alpha`` weights positives), softmax heads: one alpha per class."""

    modes = ("binary", "multilabel", "multiclass")

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
    ) -> None:
        super().__init__(head, mode, ignore_index)
        self.gamma = float(gamma)
        if mode == "multiclass":
            if isinstance(alpha, int | float):
                raise ValueError(
                    f"alpha for a softmax head needs one value per class, e.g. {[alpha, 1 - alpha]}"
                )
            self.register_buffer("alpha", self._per_class("alpha", alpha))
        else:
            if alpha is not None and not isinstance(alpha, int | float):
                raise ValueError("alpha for a sigmoid head is one number in [0, 1] (the weight of positives)")
            self.alpha = alpha

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        if self.mode == "multiclass":
            return softmax_focal(logits, target, self.ignore_index, self.gamma, self.alpha)
        return focal_loss_with_logits(logits[valid], target[valid], gamma=self.gamma, alpha=self.alpha)


class Dice(LossTerm):
    """Soft dice: global over the batch (smp ``DiceLoss``) or, with ``per_sample``, the mean over samples."""

    modes = ("binary", "multilabel", "multiclass")
    items: ClassVar[str] = "global"

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        smooth: float = 0.0,
        eps: float = 1e-7,
        log_loss: bool = False,
        per_sample: bool = False,
    ) -> None:
        super().__init__(head, mode, ignore_index)
        self.smooth, self.eps, self.log_loss = float(smooth), float(eps), bool(log_loss)
        self.items = "sample" if per_sample else type(self).items
        if self.items == "global":
            self.loss = smp_losses.DiceLoss(
                mode, smooth=smooth, eps=eps, log_loss=log_loss, ignore_index=self._smp_ignore()
            )

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        if self.items == "global":
            return self.loss(logits, self._smp_target(target, valid))
        scores = soft_dice_scores(
            *self._probs_and_onehot(logits, target, valid), self.items, self.smooth, self.eps
        )
        if scores.numel() == 0:
            return logits.sum() * 0.0
        return (-scores.clamp_min(self.eps).log() if self.log_loss else 1.0 - scores).mean()


class DicePos(Dice):
    """Positive-only dice (clouds recipe): one dice per (sample, channel) with a non-empty target, else 0."""

    items = "positive"

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        smooth: float = 0.0,
        eps: float = 1e-7,
        log_loss: bool = False,
    ) -> None:
        super().__init__(head, mode, ignore_index, smooth=smooth, eps=eps, log_loss=log_loss)


class Jaccard(LossTerm):
    """Soft Jaccard: sigmoid heads via smp ``JaccardLoss``, softmax: UNOSAT ``1 - mean(I)/mean(U)``.

    ``per_sample``: the xView2 form, one Jaccard per sample, empty targets add 0 (any head).
    """

    modes = ("binary", "multilabel", "multiclass")

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        smooth: float = 0.0,
        eps: float = 1e-7,
        log_loss: bool = False,
        per_sample: bool = False,
    ) -> None:
        super().__init__(head, mode, ignore_index)
        self.smooth, self.eps, self.log_loss = float(smooth), float(eps), bool(log_loss)
        self.per_sample = bool(per_sample)
        if per_sample and (smooth or log_loss):
            raise ValueError("per_sample uses the xView2 form (eps only): drop smooth and log_loss")
        if mode != "multiclass" and not per_sample:
            self.loss = smp_losses.JaccardLoss(
                mode, smooth=smooth, eps=eps, log_loss=log_loss, ignore_index=self._smp_ignore()
            )

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        if self.per_sample:
            return per_sample_jaccard_loss(*self._probs_and_onehot(logits, target, valid), self.eps)
        if self.mode != "multiclass":
            return self.loss(logits, self._smp_target(target, valid))
        score = ratio_jaccard(*self._probs_and_onehot(logits, target, valid), self.smooth, self.eps)
        return -score.clamp_min(self.eps).log() if self.log_loss else 1.0 - score


class Lovasz(LossTerm):
    """Lovasz hinge (sigmoid heads) or Lovasz-softmax (softmax heads), from smp."""

    modes = ("binary", "multilabel", "multiclass")

    def __init__(self, head: HeadSpec, mode: Mode, ignore_index: int, per_image: bool = False) -> None:
        super().__init__(head, mode, ignore_index)
        self.loss = smp_losses.LovaszLoss(mode, per_image=per_image, ignore_index=self._smp_ignore())

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        return self.loss(logits, self._smp_target(target, valid))


class KL(LossTerm):
    """KL divergence to soft labels (Open Cities noisy student), mean over valid pixels.

    The target is the probability of the positive class (binary heads and 2-class softmax heads, NaN =
    ignore) or, for softmax heads, a ``(B, K, ...)`` distribution or a class map. ``ignore_band=[lo, hi]``
    leaves out pixels with ``lo <= p <= hi``; ``hard`` turns the others into 0/1.
    """

    modes = ("binary", "multiclass")

    def __init__(
        self,
        head: HeadSpec,
        mode: Mode,
        ignore_index: int,
        ignore_band: tuple[float, float] | None = None,
        hard: bool = False,
    ) -> None:
        super().__init__(head, mode, ignore_index)
        if ignore_band is not None and (
            len(ignore_band) != 2 or not 0 <= ignore_band[0] <= ignore_band[1] <= 1
        ):
            raise ValueError(f"ignore_band must be [low, high] within [0, 1], got {ignore_band}")
        if hard and ignore_band is None:
            raise ValueError("hard needs ignore_band, e.g. ignore_band: [0.4, 0.6]")
        self.band = None if ignore_band is None else (float(ignore_band[0]), float(ignore_band[1]))
        self.hard = bool(hard)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.mode == "multiclass":
            log_probs = logits.log_softmax(dim=1)
        else:
            log_probs = torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
        distribution, valid = self._distribution(logits, target)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return soft_kl(log_probs, distribution, valid)

    def _distribution(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(target distribution ``(B, K, ...)``, valid pixels ``(B, ...)``)."""
        k = logits.shape[1]
        if (
            self.mode == "multiclass"
            and target.is_floating_point()
            and target.ndim == logits.ndim
            and target.shape[1] == k > 1
        ):
            if self.band is not None:
                raise ValueError(
                    "kl: ignore_band needs a positive-class probability target, not a distribution"
                )
            valid = torch.isfinite(target).all(dim=1)
            return torch.nan_to_num(target), valid
        if self.mode == "multiclass" and not target.is_floating_point() and k != 2:
            labels = class_target(logits, target, self.ignore_index)
            valid = labels != self.ignore_index
            one_hot = F.one_hot(torch.where(valid, labels, 0), k).movedim(-1, 1).to(logits.dtype)
            return one_hot, valid
        if k not in (1, 2):
            raise ValueError(f"kl: a probability target needs a 1- or 2-channel head, this one has {k}")
        positive, valid = float_target(logits[:, :1], target, self.ignore_index)
        positive, valid = positive.squeeze(1), valid.squeeze(1)
        if self.band is not None:
            low, high = self.band
            valid = valid & ((positive < low) | (positive > high))
            if self.hard:
                positive = (positive > high).to(positive.dtype)
        return torch.stack([1.0 - positive, positive], dim=1), valid


class _Regression(LossTerm):
    """Element-wise regression loss, mean over valid (non-NaN) values."""

    modes = ("regression", "direction")

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        return _masked_mean(self.elementwise(logits, target), valid)


class Huber(_Regression):
    """Huber loss with threshold ``delta`` (geopose: 5 m for height, 10 px for magnitude)."""

    def __init__(self, head: HeadSpec, mode: Mode, ignore_index: int, delta: float = 1.0) -> None:
        super().__init__(head, mode, ignore_index)
        self.delta = float(delta)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(pred, target, reduction="none", delta=self.delta)


class MSE(_Regression):
    """Mean squared error."""

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(pred, target, reduction="none")


class SmoothL1(_Regression):
    """Smooth L1 loss with transition point ``beta``."""

    def __init__(self, head: HeadSpec, mode: Mode, ignore_index: int, beta: float = 1.0) -> None:
        super().__init__(head, mode, ignore_index)
        self.beta = float(beta)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred, target, reduction="none", beta=self.beta)


class Cosine(LossTerm):
    """``1 - cos(pred, target)`` along the channel axis (geopose direction), mean over valid vectors."""

    modes = ("direction", "regression")

    def __init__(self, head: HeadSpec, mode: Mode, ignore_index: int, eps: float = 1e-3) -> None:
        super().__init__(head, mode, ignore_index)
        if head.channels < 2 and head.kind != "direction":
            raise ValueError("cosine needs a head with at least 2 channels (a vector)")
        self.eps = float(eps)

    def compute(self, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        complete = valid.all(dim=1)
        if not bool(complete.any()):
            return logits.sum() * 0.0
        return cosine_distance(logits, target, complete, self.eps)


LOSSES: dict[str, type[LossTerm]] = {
    "bce": BCE,
    "ce": CE,
    "focal": Focal,
    "dice": Dice,
    "dice_pos": DicePos,
    "jaccard": Jaccard,
    "lovasz": Lovasz,
    "kl": KL,
    "huber": Huber,
    "mse": MSE,
    "smooth_l1": SmoothL1,
    "cosine": Cosine,
}
"""Loss name -> term class. Config: ``loss: {head: {name: weight or {weight: w, **params}}}``."""
