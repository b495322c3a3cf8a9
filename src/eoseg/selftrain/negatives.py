"""``eoseg mine-negatives``: chips a trained model finds empty, or gets confidently wrong, as negatives.

Rules (``selftrain.negatives``; Open Cities ``mine_empty``, seed-solutions.md §1.8):

- a chip of a set without labels (unlabelled or pseudo-labelled chips, ``--unlabelled``) is a negative
  when the image-level head (if the model has one) and the maximum pixel probability of the main head
  are both below ``empty_below`` (the seed: 0.2 and 0.2);
- a chip of a labelled set (``--labelled``) is a negative when its truth has no object and the model's
  maximum pixel probability exceeds ``false_positive_above`` (a confident false positive).

The result is ``negatives.parquet``: the chips' manifest rows with absolute image paths, plus ``reason``
(``empty`` / ``false_positive``) and ``score`` (how confident; higher first when a cap applies).
Training adds them with an implicit zero mask (``selftrain.negatives.manifest``, capped by ``share``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eoseg.config.activation import activation_of, main_head
from eoseg.config.schema import NegativesSpec
from eoseg.data.dataset import ChipDataset, read_manifest, read_prepared_stats
from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path
from eoseg.inference.engine import resolve_device
from eoseg.inference.predictor import check_bundles
from eoseg.models.bundle import ModelBundle
from eoseg.models.heads import activate

BATCH = 8


@dataclass
class MiningResult:
    """What :func:`mine_negatives` found."""

    path: Path
    negatives: int
    empty: int
    false_positive: int
    chips: int


def foreground(probs: torch.Tensor, softmax: bool) -> torch.Tensor:
    """Probability that something is there: ``1 - p(background)`` for softmax, the largest channel otherwise."""
    return 1.0 - probs[:, 0] if softmax else probs.max(dim=1).values


@torch.no_grad()
def chip_scores(bundles: Sequence[ModelBundle], root: Path, device: str = "auto") -> pd.DataFrame:
    """Per chip of the prepared set at ``root``: max pixel foreground probability and image-level score.

    The ensemble mean of the models' probabilities; ``image_score`` is NaN when no model has an image head.
    """
    first = bundles[0]
    manifest = read_manifest(root)
    prepared = read_prepared_stats(root)
    if prepared["inputs"] != first.inputs or prepared["bands"] != first.bands:
        raise InputError(f"{root}: chips have inputs {prepared['inputs']} but the model takes {first.inputs}; "
                         "mine chips prepared with the model's bands")
    stats = {**first.stats, "nodata": prepared["nodata"], "scene_nodata": prepared.get("scene_nodata", {})}
    dataset = ChipDataset(root, manifest, stats, first.config.data.model_copy(update={"targets": {}}))
    torch_device = resolve_device(device)
    config = first.config
    main = main_head(dict(config.model.heads))
    image_heads = [n for n, h in config.model.heads.items() if h.kind == "image_class"]
    max_p, image_p = [], []
    for start in range(0, len(dataset), BATCH):
        items = [dataset[i] for i in range(start, min(start + BATCH, len(dataset)))]
        x = torch.stack([item["image"] for item in items]).to(torch_device)
        valid = torch.stack([item["valid"] for item in items]).to(torch_device)
        pixel = torch.zeros(len(items), device=torch_device)
        image = torch.zeros(len(items), device=torch_device)
        for bundle in bundles:
            model = bundle.model.to(torch_device)
            outputs = model(x)
            head = bundle.config.model.heads[main]
            probs = activate(head, bundle.config.task, outputs[main])
            fg = foreground(probs, activation_of(head, bundle.config.task) == "softmax")
            pixel += torch.where(valid, fg, torch.zeros_like(fg)).flatten(1).max(dim=1).values
            if image_heads:
                spec = bundle.config.model.heads[image_heads[0]]
                scores = activate(spec, bundle.config.task, outputs[image_heads[0]])
                image += foreground(scores, activation_of(spec, bundle.config.task) == "softmax")
        max_p.append((pixel / len(bundles)).cpu())
        image_p.append((image / len(bundles)).cpu())
    out = manifest.copy()
    out["max_p"] = torch.cat(max_p).numpy() if max_p else np.zeros(0)
    out["image_score"] = torch.cat(image_p).numpy() if image_heads and image_p else np.nan
    return out


def truth_is_empty(manifest: pd.DataFrame, target: str) -> np.ndarray:
    """``bool`` per chip: the labelled target has no object (no class > 0, or a raster of zeros)."""
    classes = [c for c in manifest.columns if c.startswith(f"frac:{target}:") and not c.endswith(":0")]
    if not classes:
        raise InputError(f"manifest has no class fractions of target {target!r}; --labelled needs a chip set "
                         "prepared from vector labels")
    return manifest[classes].fillna(0).to_numpy().sum(axis=1) == 0


def mine_negatives(
    bundles: Sequence[ModelBundle],
    labelled: Sequence[Path],
    unlabelled: Sequence[Path],
    out: Path,
    spec: NegativesSpec,
    device: str = "auto",
) -> MiningResult:
    """Score the chips of every set and write the negatives (see the module doc) to ``out`` (parquet)."""
    check_bundles(bundles)
    if not labelled and not unlabelled:
        raise InputError("eoseg mine-negatives: give chip sets with --labelled and/or --unlabelled")
    main = main_head(dict(bundles[0].config.model.heads))
    target = bundles[0].config.model.heads[main].target or main
    frames, chips = [], 0
    for root, is_labelled in [*((Path(r), True) for r in labelled), *((Path(r), False) for r in unlabelled)]:
        scores = chip_scores(bundles, root, device)
        chips += len(scores)
        if is_labelled:
            keep = truth_is_empty(scores, target) & (scores["max_p"].to_numpy() > spec.false_positive_above)
            reason, score = "false_positive", scores["max_p"]
        else:
            image = scores["image_score"].fillna(0.0).to_numpy()
            keep = (scores["max_p"].to_numpy() < spec.empty_below) & (image < spec.empty_below)
            reason, score = "empty", 1.0 - np.maximum(scores["max_p"], image)
        found = scores[keep].copy()
        found["score"] = score[keep]
        found["reason"] = reason
        for column in [c for c in found.columns if c.startswith("image:")]:
            found[column] = [str((root / p).resolve()) for p in found[column]]
        drop = [c for c in found.columns if c.startswith(("target:", "frac:"))]
        frames.append(found.drop(columns=drop))
    result = pd.concat(frames, ignore_index=True).sort_values("score", ascending=False, kind="stable")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        result.to_parquet(tmp, index=False)
    counts = result["reason"].value_counts()
    return MiningResult(out, len(result), int(counts.get("empty", 0)), int(counts.get("false_positive", 0)), chips)


def why_none_kept(
    bundle: ModelBundle, labelled: Sequence[Path], unlabelled: Sequence[Path], spec: NegativesSpec
) -> str:
    """Why ``mine-negatives`` kept no chip: per kind of set, how many chips could qualify and the threshold."""
    reasons = []
    if unlabelled:
        count = sum(len(read_manifest(root)) for root in unlabelled)
        reasons.append(f"no unlabelled chip (of {count}) has its maximum pixel probability and image score both below "
                       f"selftrain.negatives.empty_below={spec.empty_below:g}")
    if labelled:
        main = main_head(dict(bundle.config.model.heads))
        target = bundle.config.model.heads[main].target or main
        manifests = [read_manifest(root) for root in labelled]
        empty = sum(int(truth_is_empty(m, target).sum()) for m in manifests)
        if empty:
            reasons.append(f"the model stays below selftrain.negatives.false_positive_above="
                           f"{spec.false_positive_above:g} on all {empty} labelled chips without an object")
        else:
            reasons.append(f"none of the {sum(len(m) for m in manifests)} labelled chips is without an object "
                           "(prepare smaller chips, data.chips.size, to get some)")
    return "; ".join(reasons)
