"""Kaggle Understanding Clouds end to end, as docs/recipes/clouds.md walks it, on Kaggle's own layout.

train.csv + train_images/ -> prepare (resize, RLE decode) -> train (the clouds preset as shipped, only
sizes, epochs and a smaller encoder) -> predict the out-of-fold images with --format clouds ->
thresholds (threshold, min area and gate per class) -> evaluate (Kaggle Dice) -> submission for test_images/.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from eoseg.formats.clouds import LABELS, read_clouds_csv
from eoseg.formats.rle import rle_decode

from ..conftest import run_cli
from .data import make_clouds_dataset

SIZES = ["data.format.size=[64,96]", "data.chips.size=64", "data.chips.overlap=32"]
TRAIN = [
    "model.encoder=resnet18",
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.tensorboard=false",
]


@pytest.mark.slow
def test_clouds_recipe_from_kaggle_layout_to_scored_submission(tmp_path):
    started = time.perf_counter()
    kaggle = make_clouds_dataset(tmp_path / "kaggle", n_train=8, n_test=2)
    chips, runs, oof, pred = (tmp_path / n for n in ("chips", "runs", "oof", "pred"))

    run_cli(["prepare", "clouds", "--scenes", kaggle / "train.csv", "--out", chips, *SIZES, "--quiet"])
    manifest = pd.read_parquet(chips / "manifest.parquet")
    assert manifest["scene"].nunique() == 8 and (manifest["size"] == 64).all()
    assert len(manifest) == 16  # two overlapping 64 x 64 chips cover each 64 x 96 image

    run_cli(["train", "clouds", f"data.root={chips}", f"train.out={runs}", *SIZES, *TRAIN])
    checkpoint = runs / "clouds" / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file()

    val = sorted(manifest.loc[manifest["fold"] == 0, "scene"].unique())
    images = [kaggle / "train_images" / f"{v}.jpg" for v in val]
    run_cli(["predict", checkpoint, *images, "--out", oof, "--format", "clouds", "--quiet"])
    rows = pd.read_csv(oof / "submission.csv", keep_default_na=False)
    assert list(rows["Image_Label"]) == [f"{v}.jpg_{label}" for v in val for label in LABELS]
    for rle in rows["EncodedPixels"]:
        rle_decode(rle, (350, 525))  # valid runs on the 350 x 525 submission grid

    probs = [oof / f"{v}.prob.tif" for v in val]
    truths = [x for v in val for x in ("-t", chips / "sources" / f"{v}.mask.tif")]
    overlay = oof / "post.yaml"
    run_cli(
        [
            "thresholds",
            *probs,
            *truths,
            "--kind",
            "multilabel",
            "--metric",
            "mean_dice",
            "--min-areas",
            "0,100,1000",
            "--gate",
            "image_class",
            "--out",
            overlay,
        ]
    )
    post = yaml.safe_load(overlay.read_text())["post"]
    assert len(post["threshold"]) == 4 and len(post["min_area"]) == 4
    assert post["gate"]["head"] == "image_class" and len(post["gate"]["threshold"]) == 4

    metrics = oof / "metrics.json"
    run_cli(
        ["evaluate", oof / "submission.csv", "--truth", kaggle / "train.csv", "--format", "clouds", "--out", metrics]
    )
    score = json.loads(metrics.read_text())
    assert score["images"] == len(val) and score["unscored"] == 8 - len(val)
    assert 0.0 <= score["dice"] <= 1.0
    assert score["dice"] == pytest.approx(np.mean(list(score["per_class"].values())))

    tests = sorted((kaggle / "test_images").glob("*.jpg"))
    searched = [
        f"post.threshold={post['threshold']}",
        f"post.min_area={post['min_area']}",
        f"post.gate.threshold={post['gate']['threshold']}",
    ]
    run_cli(["predict", checkpoint, *tests, "--out", pred, "--format", "clouds", "--quiet", *searched])
    submission = read_clouds_csv(pred / "submission.csv", (350, 525))
    assert sorted(submission) == [t.name for t in tests]
    assert all(sorted(labels) == sorted(LABELS) for labels in submission.values())
    print(
        f"clouds recipe: Kaggle Dice {score['dice']:.4f} on {len(val)} out-of-fold images, "
        f"{time.perf_counter() - started:.1f} s"
    )
