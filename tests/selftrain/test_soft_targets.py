"""Soft targets: probabilities survive prepare and the task's target derivation; losses on soft targets."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.synthetic_scenes import gradient_image, grid, write_raster

from eoseg.config.loader import validate_config
from eoseg.config.schema import HeadSpec, TaskSpec
from eoseg.data.dataset import ChipDataset, read_manifest, read_prepared_stats
from eoseg.data.prepare import prepare
from eoseg.errors import ConfigError, InputError
from eoseg.losses import build_term
from eoseg.tasks.kinds import build_task_kind

NAN = float("nan")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def soft_scene(folder: Path, transform=None, values=(0.3, 0.8)) -> dict:
    """A 64 px RGB scene with a soft-label raster: left half p=values[0], right half values[1], a NaN corner."""
    folder.mkdir(parents=True, exist_ok=True)
    image = write_raster(folder / "scene.tif", gradient_image(64, 64))
    soft = np.full((1, 64, 64), values[0], dtype=np.float32)
    soft[:, :, 32:] = values[1]
    soft[:, :8, :8] = np.nan
    labels = write_raster(folder / "scene.soft.tif", soft, transform=transform, nodata=float("nan"))
    return {"id": "town", "images": {"image": str(image)}, "targets": {"mask": str(labels)}}


def soft_config(root: Path, scenes: list[dict], head: dict | None = None):
    return validate_config({
        "data": {"root": str(root), "scenes": scenes, "folds": 1, "chips": {"size": 32, "overlap": 0},
                 "targets": {"mask": {"kind": "raster", "soft": True}}},
        "model": {"heads": {"mask": head or {"channels": 1, "activation": "sigmoid"}}},
    })


def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def chip_targets(config, root: Path) -> dict[str, dict[str, np.ndarray]]:
    kind = build_task_kind(config)
    manifest = read_manifest(root)
    dataset = ChipDataset(root, manifest, read_prepared_stats(root), config.data, kind.head_targets)
    return {dataset.chip_id(i): {k: v.numpy() for k, v in dataset[i]["targets"].items()} for i in range(len(dataset))}


def test_prepare_keeps_soft_labels_as_probabilities(tmp_path) -> None:
    config = soft_config(tmp_path / "chips", [soft_scene(tmp_path / "in")])
    prepare(config, progress=False)
    targets = chip_targets(config, tmp_path / "chips")
    first = targets["town-s1-r0-c0"]["mask"]
    assert first.shape == (1, 32, 32) and first.dtype == np.float32
    assert np.isnan(first[0, :8, :8]).all()  # nodata stays ignore
    assert np.allclose(first[0, 8:, :], 0.3)  # not binarised
    assert np.allclose(targets["town-s1-r0-c32"]["mask"], 0.8)


def test_softmax_head_gets_the_positive_probability(tmp_path) -> None:
    config = soft_config(tmp_path / "chips", [soft_scene(tmp_path / "in")], {"channels": 2, "activation": "softmax"})
    prepare(config, progress=False)
    target = chip_targets(config, tmp_path / "chips")["town-s1-r32-c0"]["mask"]
    assert target.shape == (1, 32, 32) and np.allclose(target, 0.3)


def test_soft_labels_on_another_grid_are_refused(tmp_path) -> None:
    scene = soft_scene(tmp_path / "in", transform=grid(res=2.0))
    before = digest(tmp_path / "in")
    with pytest.raises(InputError, match=r"scene.soft.tif: soft labels of target 'mask' are on another grid "
                                         r"\(64x64 px.*than image scene.tif of scene town.*image's grid"):
        prepare(soft_config(tmp_path / "chips", [scene]), progress=False)
    assert digest(tmp_path / "in") == before
    assert not (tmp_path / "chips" / "manifest.parquet").exists()


def test_soft_labels_outside_zero_one_are_refused(tmp_path) -> None:
    scene = soft_scene(tmp_path / "in", values=(0.2, 255.0))
    before = digest(tmp_path / "in")
    with pytest.raises(InputError, match=r"soft labels of target 'mask' \(scene town\) hold values [0-9.]+..255, "
                                         r"not probabilities in \[0, 1\]"):
        prepare(soft_config(tmp_path / "chips", [scene]), progress=False)
    assert digest(tmp_path / "in") == before
    assert not (tmp_path / "chips" / "manifest.parquet").exists()


def test_soft_needs_a_raster_target() -> None:
    with pytest.raises(ConfigError, match="soft: true needs kind: raster"):
        validate_config({"data": {"targets": {"mask": {"kind": "vector", "soft": True}}}})


# ------------------------------------------------------------------------------------------ losses

SIGMOID1 = HeadSpec(channels=1)
SOFTMAX2 = HeadSpec(channels=2, activation="softmax")


def term(name: str, head: HeadSpec, **params):
    return build_term("mask", head, TaskSpec(), name, params)


def test_bce_with_soft_targets_matches_hand_value() -> None:
    logits = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    target = torch.tensor([[[[0.3, 0.25, NAN]]]])
    # pixel 1: -(.3 ln .5 + .7 ln .5) = ln 2 ; pixel 2: -(.25 ln s(1) + .75 ln(1 - s(1))) ; pixel 3 ignored
    p = sigmoid(1.0)
    expected = (math.log(2) - (0.25 * math.log(p) + 0.75 * math.log(1 - p))) / 2
    assert term("bce", SIGMOID1)(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_soft_dice_matches_hand_value() -> None:
    logits = torch.tensor([[[[0.0, math.log(3.0), 5.0]]]])
    target = torch.tensor([[[[0.5, 0.2, NAN]]]])
    # p = (.5, .75), t = (.5, .2): I = sum min(p, t) = .5 + .2 ; sum p + sum t = 1.25 + .7 (smp's soft form,
    # which equals sum pt for 0/1 targets and scores 1 when p equals the soft label)
    expected = 1 - 1.4 / 1.95
    assert term("dice", SIGMOID1)(logits, target).item() == pytest.approx(expected, rel=1e-5)
    assert term("dice", SIGMOID1, per_sample=True)(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_kl_on_a_softmax_head_with_soft_targets_matches_hand_value() -> None:
    # logits (0, ln 3) -> q = (.25, .75); soft target p = .6 -> KL = .4 ln(.4/.25) + .6 ln(.6/.75)
    logits = torch.tensor([[[[0.0, 0.0]], [[math.log(3.0), 0.0]]]])
    target = torch.tensor([[[[0.6, NAN]]]])
    expected = 0.4 * math.log(0.4 / 0.25) + 0.6 * math.log(0.6 / 0.75)
    assert term("kl", SOFTMAX2)(logits, target).item() == pytest.approx(expected, rel=1e-5)
    # the same soft label on a sigmoid head: q = s(ln 3) = .75
    sig = torch.tensor([[[[math.log(3.0), 0.0]]]])
    assert term("kl", SIGMOID1)(sig, target).item() == pytest.approx(expected, rel=1e-5)
