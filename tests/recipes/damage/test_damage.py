"""The damage recipe (xView2) end to end, as docs/recipes/damage.md walks it.

xBD folder (PNG pairs + JSON labels, ``un-classified`` buildings included) -> ``prepare`` (the preset reads
the layout) -> ``train damage`` (the preset as shipped: siamese Unet, focal + Jaccard localisation, weighted
CE damage on building pixels, D4 TTA; only sizes and epochs shrunk) -> ``predict --format xview2`` (one
damage class per building, the submission PNGs) -> ``evaluate --format xview2`` (the official score).
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eoseg.cli import main
from eoseg.errors import InputError
from eoseg.formats.xbd import read_xbd_json

from ..conftest import folder_hashes, run_cli
from .data import DISASTER, make_xbd

torch.set_num_threads(1)

SIZES = ["data.chips.size=64", "data.chips.overlap=0", "data.folds=3", "model.encoder=resnet18"]
SHORT = ["train.epochs=2", "train.limit_train_batches=4", "train.limit_val_batches=2", "train.num_workers=0",
         "train.accelerator=cpu"]


@pytest.mark.slow
def test_damage_recipe_from_xbd_folder_to_official_score(tmp_path, capsys):
    data = make_xbd(tmp_path / "xbd")
    chips, runs, pred = tmp_path / "chips", tmp_path / "runs", tmp_path / "pred"
    run_cli(["prepare", "damage", "--scenes", data["train"], "--out", chips, *SIZES[:3], "--quiet"])
    manifest = pd.read_parquet(chips / "manifest.parquet")
    assert set(manifest["region"]) == {DISASTER} and manifest["scene"].nunique() == 3
    assert manifest["frac:mask:1"].sum() > 0 and manifest.filter(like="frac:damage:").iloc[:, 1:].sum().sum() > 0

    run_cli(["train", "damage", f"data.root={chips}", f"train.out={runs}", *SIZES, *SHORT])
    checkpoint = runs / "damage" / "checkpoints" / "best.ckpt"
    run_cli(["predict", checkpoint, f"pre={data['pre']},post={data['post']}", "--out", pred, "--format", "xview2",
             "predict.window=128", "-q"])
    image_id = data["post"].stem.removeprefix("test_post_")
    loc = np.asarray(Image.open(pred / f"test_localization_{image_id}_prediction.png"))
    damage = np.asarray(Image.open(pred / f"test_damage_{image_id}_prediction.png"))
    assert loc.shape == damage.shape == (128, 128) and loc.dtype == damage.dtype == np.uint8
    assert set(np.unique(loc)) <= {0, 1} and set(np.unique(damage)) <= {0, 1, 2, 3, 4}
    assert ((damage > 0) == (loc > 0)).all()  # every localised building has one damage class, nothing else does
    buildings = gpd.read_file(pred / f"{image_id}.buildings.gpkg")  # pixel coordinates: no CRS, not GeoJSON
    assert buildings.crs is None and buildings["damage"].isin([1, 2, 3, 4]).all()

    capsys.readouterr()
    metrics = tmp_path / "metrics.json"
    run_cli(["evaluate", pred, "--truth", data["targets"], "--format", "xview2", "--out", metrics])
    assert "damage (harmonic mean)" in capsys.readouterr().out
    score = json.loads(metrics.read_text())
    assert score["score"] == pytest.approx(0.3 * score["localization_f1"] + 0.7 * score["damage_f1"])
    assert 0.0 <= score["score"] <= 1.0 and set(score["per_class"]) == {"no_damage", "minor_damage",
                                                                        "major_damage", "destroyed"}
    print(f"damage recipe: xView2 score {score['score']:.3f} (localisation F1 {score['localization_f1']:.3f}, "
          f"damage F1 {score['damage_f1']:.3f})")


def test_xbd_label_with_an_unknown_subtype_is_refused_and_nothing_is_written(tmp_path, capsys):
    data = make_xbd(tmp_path / "xbd", n_train=1)
    label = next((data["train"] / "labels").glob("*_post_disaster.json"))
    doc = json.loads(label.read_text())
    doc["features"]["xy"][0]["properties"]["subtype"] = "flooded"
    doc["features"]["lng_lat"][0]["properties"]["subtype"] = "flooded"
    label.write_text(json.dumps(doc))
    uid = doc["features"]["xy"][0]["properties"]["uid"]
    expected = (rf"{label.name}: feature {uid} has unknown subtype 'flooded'; xBD subtypes are no-damage, "
                r"minor-damage, major-damage, destroyed, un-classified")
    with pytest.raises(InputError, match=expected):
        read_xbd_json(label)
    before = folder_hashes(tmp_path / "xbd")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "damage", "--scenes", str(data["train"]), "--out", str(tmp_path / "chips"), *SIZES[:3],
              "--quiet"])
    assert exit_info.value.code == 2
    printed = capsys.readouterr()
    assert "unknown subtype 'flooded'" in printed.out + printed.err
    assert folder_hashes(tmp_path / "xbd") == before
    assert not (tmp_path / "chips" / "manifest.parquet").exists()
