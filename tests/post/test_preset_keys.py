"""Every key a shipped preset sets under ``predict`` or ``post`` has a visible effect: for each one, a
prediction (or, for ``post.metric``, the threshold search) with the preset's value differs from one with
another value. A preset key without an effect check here fails the loop: add the check or drop the key."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from eoseg.config.loader import list_presets, read_source
from eoseg.config.schema import GateSpec, HeadSpec, PostSpec, PredictSpec
from eoseg.geo.raster import write_geotiff
from eoseg.inference.predictor import predict_scene
from eoseg.post.search import search_thresholds

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from inference_helpers import CRS_UTM, TRANSFORM, make_bundle, write_scene  # noqa: E402

torch.set_num_threads(1)


class Conv3(nn.Module):
    """A fixed 3x3 convolution (not flip-equivariant, edge-sensitive) plus an image-level head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.conv(x)
        return {"mask": y, "image_class": y.mean(dim=(2, 3))}


HEADS = {"mask": HeadSpec(kind="dense", channels=1, activation="sigmoid"),
         "image_class": HeadSpec(kind="image_class", channels=1, activation="sigmoid")}
BASE = {"window": 32, "overlap": 8, "tta": "none", "device": "cpu", "workers": 1}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    image = np.random.default_rng(8).integers(1, 255, (3, 64, 80)).astype(np.uint8)
    return root, write_scene(root / "s.tif", image)


def predicted(scene: tuple[Path, Path], predict: dict[str, Any] | None = None,
              post: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(probability band, mask band)`` of the scene predicted with these predict/post settings."""
    root, path = scene
    bundle = make_bundle(Conv3(), bands=["red", "green", "blue"], heads=HEADS, chip=32, mean=128.0, std=64.0)
    spec = PredictSpec(**{**BASE, **(predict or {})})
    out = root / f"p{len(list(root.iterdir()))}"
    result = predict_scene([bundle], {"image": path}, out, spec, PostSpec(**(post or {"threshold": 0.5})),
                           progress=False)
    with rasterio.open(result.prob) as p, rasterio.open(result.mask) as m:
        return p.read(1), m.read(1)


def differs(scene, section: str, key: str, value: Any, other: Any, **predict: Any) -> bool:
    """Whether the probability or mask rasters differ between ``key=value`` and ``key=other``."""
    def run(v: Any) -> tuple[np.ndarray, np.ndarray]:
        if section == "predict":
            return predicted(scene, predict={**predict, key: v})
        return predicted(scene, post={"threshold": 0.5, key: v})

    (p1, m1), (p2, m2) = run(value), run(other)
    return not (np.array_equal(p1, p2) and np.array_equal(m1, m2))


def _metric(scene, value: str) -> bool:
    """post.metric decides which score the threshold search reports and maximises (dice is a monotone
    function of IoU on pooled counts, so the choice can agree while the reported score differs)."""
    root, _ = scene
    prob, _ = predicted(scene)
    truth = (np.random.default_rng(1).random(prob.shape) < 0.4).astype(np.uint8)[None]
    prob_path = root / "s-prob.tif"
    write_geotiff(prob_path, prob[None].astype(np.float32) / 255, CRS_UTM, TRANSFORM, None)
    truth_path = write_geotiff(root / "s-truth.tif", truth, CRS_UTM, TRANSFORM, 255)
    other = "iou" if value != "iou" else "dice"  # on one scene, dice and mean_dice agree
    scores = [search_thresholds([prob_path], [truth_path], metric=m, thresholds=[0.3, 0.5, 0.7])[0].score
              for m in (value, other)]
    return scores[0] != pytest.approx(scores[1])


EFFECTS: dict[tuple[str, str], Callable[[Any, Any], bool]] = {
    ("predict", "tta"): lambda s, v: differs(s, "predict", "tta", v, "none" if v != "none" else "flips"),
    # scaled windows are rounded to multiples of 32 px: a 128 px window makes 0.75 a real rescale
    ("predict", "tta_scales"): lambda s, v: differs(s, "predict", "tta_scales", v, [1.0] if v != [1.0] else [0.5],
                                                    window=128),
    ("predict", "blend"): lambda s, v: differs(s, "predict", "blend", v, "uniform" if v != "uniform" else "hann"),
    ("predict", "window"): lambda s, v: differs(s, "predict", "window", 32, 48),  # the preset's sizes, shrunk
    ("predict", "overlap"): lambda s, v: differs(s, "predict", "overlap", 8, 0),
    ("post", "threshold"): lambda s, v: differs(s, "post", "threshold", v, 0.3 if v != 0.3 else 0.7),
    ("post", "min_area"): lambda s, v: differs(s, "post", "min_area", v or 2.0, 0.0),  # m²; 0.25 m² pixels
    ("post", "gate"): lambda s, v: differs(s, "post", "gate", GateSpec(head="image_class", threshold=1.0), None),
    ("post", "metric"): _metric,
}


SIZED_HERE = {("predict", "window"), ("predict", "overlap"), ("post", "gate")}
"""Keys whose check uses sizes of this scene (the preset's windows are larger than it), checked once."""


def _preset_keys() -> list[tuple[str, str, str, Any]]:
    keys = []
    for name in list_presets():
        raw, _ = read_source(name)  # the raw YAML: only the keys the preset itself sets
        for section in ("predict", "post"):
            for key, value in (raw.get(section) or {}).items():
                keys.append((name, section, key, value))
    return keys


def test_every_preset_predict_and_post_key_has_a_visible_effect(scene):
    keys = _preset_keys()
    assert {(s, k) for _, s, k, _ in keys} >= {("predict", "tta"), ("post", "threshold"), ("post", "gate")}
    missing = sorted({f"{s}.{k}" for _, s, k, _ in keys if (s, k) not in EFFECTS})
    assert not missing, f"preset keys without an effect check: {missing}"
    checked: set[tuple[str, str, str]] = set()
    for _, section, key, value in keys:
        label = (section, key, "" if (section, key) in SIZED_HERE else repr(value))
        if label in checked:
            continue
        checked.add(label)
        if isinstance(value, list) and section == "post" and key != "metric":
            value = value[0]  # one probability channel here
        if section == "post" and key == "gate":
            value = GateSpec(**value)
        assert EFFECTS[(section, key)](scene, value), f"{section}.{key}={value!r} changed nothing"
