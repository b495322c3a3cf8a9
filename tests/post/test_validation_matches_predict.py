"""Validation during training and ``eoseg predict`` decide by the same Postprocessor rule: a softmax binary
model (the ``buildings`` preset, shrunk) at two thresholds gives the same masks and the same IoU through
the task's validation metrics as through ``eoseg predict`` + ``eoseg evaluate`` on the same scene
(the scene is one window: no blending, no TTA)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eoseg.config.schema import PostSpec
from eoseg.data.bandmath import BandMath
from eoseg.data.stats import model_inputs
from eoseg.geo.products import IGNORE
from eoseg.geo.raster import write_geotiff
from eoseg.models.checkpoint import load_bundle
from eoseg.tasks.kinds import build_task_kind

sys.path.insert(0, str(Path(__file__).parent))
from test_predict_post import preset_checkpoint, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from inference_helpers import CRS_UTM, TRANSFORM, write_scene  # noqa: E402

ONE_WINDOW = ["predict.window=64", "predict.overlap=0", "predict.blend=uniform", "predict.tta_scales=[1.0]",
              "post.min_area=0"]


def test_softmax_binary_validation_equals_predict_and_evaluate(tmp_path):
    ckpt = preset_checkpoint(tmp_path / "buildings.ckpt", "buildings")
    image = np.random.default_rng(11).integers(1, 255, (3, 64, 64)).astype(np.uint8)
    scene = write_scene(tmp_path / "city.tif", image)
    bundle = load_bundle(ckpt)
    bandmath = BandMath(bundle.inputs, bundle.bands, bundle.stats.get("scales"))
    inputs = model_inputs(bandmath, {"image": image}, np.ones((64, 64), bool), bundle.stats)
    with torch.no_grad():
        outputs = bundle.model(torch.from_numpy(inputs)[None])
    fg = outputs["mask"].float().softmax(dim=1)[0, 1].numpy()
    # thresholds halfway between two uint8 steps: predict thresholds the stored probabilities (k / 255, what
    # .prob.tif holds), validation the float ones; at such a threshold both decide every pixel alike
    low, high = ((np.round(np.quantile(fg, q) * 255) + 0.5) / 255 for q in (0.3, 0.7))
    truth = (fg > np.quantile(fg, 0.5)).astype(np.uint8)
    truth ^= (np.random.default_rng(2).random(truth.shape) < 0.2).astype(np.uint8)
    truth[:, :4] = IGNORE  # unlabelled columns: left out by both
    truth_path = write_geotiff(tmp_path / "truth.tif", truth[None], CRS_UTM, TRANSFORM, IGNORE)

    ious = {}
    for t in (low, high):
        config = bundle.config.model_copy(update={"post": PostSpec(threshold=t)})
        kind = build_task_kind(config)
        validated = kind.prediction(outputs)[0].numpy()
        assert (validated == (fg > t)).all()  # p > t on the foreground channel, not the argmax
        metrics = kind.build_metrics()
        kind.update_metrics(metrics, outputs, {"mask": torch.from_numpy(truth.astype(np.int64))[None]})
        val_iou = float(kind.compute_metrics(metrics)["iou"])

        out = tmp_path / f"t{t}"
        assert run("predict", ckpt, scene, "--out", out, "-q", f"post.threshold={t}", *ONE_WINDOW) == 0
        with rasterio.open(out / "city.mask.tif") as src:
            mask = src.read(1)
        assert (mask == validated).all()
        assert run("evaluate", out / "city.mask.tif", "--truth", truth_path, "--out", out / "metrics.json") == 0
        scored = json.loads((out / "metrics.json").read_text())["pixel"]
        ious[t] = val_iou
        assert val_iou == pytest.approx(scored["micro"]["iou"], abs=1e-6)
    assert ious[low] != pytest.approx(ious[high], abs=1e-3)  # the threshold moves the validation score
