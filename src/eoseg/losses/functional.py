"""Loss formulas that segmentation-models-pytorch does not provide, on prepared tensors with valid masks.

Each function receives targets in one form (see :mod:`eoseg.losses.targets`) plus a boolean ``valid``
mask and averages over valid values only.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def softmax_focal(
    logits: Tensor, target: Tensor, ignore_index: int, gamma: float, alpha: Tensor | None
) -> Tensor:
    """Multiclass focal loss (Open Cities): mean over valid pixels of ``-(1-p_t)^gamma alpha_t log p_t``.

    ``logits`` ``(B, K, ...)``, ``target`` long ``(B, ...)``; ``alpha`` holds one weight per class.
    """
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    log_pt = F.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    if alpha is not None:
        loss = loss * alpha.to(logits)[safe]
    return loss[valid].mean()


def soft_dice_scores(
    probs: Tensor,
    target: Tensor,
    valid: Tensor,
    items: Literal["sample", "positive"],
    smooth: float,
    eps: float,
) -> Tensor:
    """Soft dice ``(2 I + smooth) / (sum p + sum t + smooth)`` per item; inputs ``(B, K, N)``.

    ``I = (sum p + sum t - sum |p - t|) / 2`` (``= sum min(p, t)``): ``sum pt`` for 0/1 targets, and for soft
    targets the form smp's ``DiceLoss`` uses, which scores 1 when ``p`` equals the soft label.

    ``items="sample"``: one score per sample over all its channels and pixels. ``"positive"`` (clouds
    recipe): one score per (sample, channel) whose target has a value above 0.5; empty channels are left
    out (the result may be empty).
    """
    probs, target = probs * valid, target * valid
    dims = (1, 2) if items == "sample" else (2,)
    cardinality = probs.sum(dims) + target.sum(dims)
    intersection = (cardinality - (probs - target).abs().sum(dims)) / 2
    scores = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    if items == "positive":
        scores = scores[target.amax(dim=2) > 0.5]
    return scores


def ratio_jaccard(probs: Tensor, target: Tensor, valid: Tensor, smooth: float, eps: float) -> Tensor:
    """Soft Jaccard score as a ratio of means (UNOSAT): ``mean(I) / mean(U)`` over (sample, class) items.

    ``I = sum p*y``, ``U = sum (p + y - p*y)`` per item; inputs ``(B, K, N)``.
    """
    probs, target = probs * valid, target * valid
    intersection = (probs * target).sum(2)
    union = (probs + target - probs * target).sum(2)
    return (intersection.mean() + smooth) / (union.mean() + smooth).clamp_min(eps)


def per_sample_jaccard_loss(probs: Tensor, target: Tensor, valid: Tensor, eps: float) -> Tensor:
    """xView2 localisation Jaccard: mean over samples of ``(1 - J) * [target not empty]``.

    ``J = (I + eps) / (sum p + sum t - I + eps)`` per sample over all channels and pixels; inputs
    ``(B, K, N)``. Samples with an empty target add 0 but count in the mean.
    """
    probs, target = probs * valid, target * valid
    intersection = (probs * target).sum((1, 2))
    union = probs.sum((1, 2)) + target.sum((1, 2)) - intersection
    jaccard = (intersection + eps) / (union + eps)
    return ((1.0 - jaccard) * (target.sum((1, 2)) > 0)).mean()


def soft_kl(log_probs: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """KL divergence ``sum_k t_k (log t_k - log p_k)`` per pixel, mean over valid pixels.

    ``log_probs`` and ``target`` (a distribution) are ``(B, K, ...)``, ``valid`` is ``(B, ...)``.
    """
    per_pixel = F.kl_div(log_probs, target, reduction="none").sum(1)
    return per_pixel[valid].mean()


def cosine_distance(pred: Tensor, target: Tensor, valid: Tensor, eps: float) -> Tensor:
    """Mean over valid vectors of ``1 - cos(pred, target)`` along dim 1 (geopose direction loss)."""
    cosine = F.cosine_similarity(pred, target, dim=1, eps=eps)
    return (1.0 - cosine)[valid].mean()
