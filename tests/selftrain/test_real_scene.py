"""Pseudo-labels of a real scene (a crop of the SpaceNet Atlanta tile in ../shared/data): the soft labels lie on
the image's grid, keep its nodata, hold the model's TTA-averaged probabilities, and ``prepare`` cuts them into
soft (not binarised) chip targets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_helpers import PointwiseModel, image_stats, make_bundle  # noqa: E402

from eoseg.config.loader import validate_config  # noqa: E402
from eoseg.config.schema import HeadSpec  # noqa: E402
from eoseg.data.dataset import ChipDataset, read_manifest, read_prepared_stats  # noqa: E402
from eoseg.data.prepare import prepare  # noqa: E402
from eoseg.geo.raster import write_geotiff  # noqa: E402
from eoseg.selftrain.pseudo import pseudo_label  # noqa: E402
from eoseg.tasks.kinds import build_task_kind  # noqa: E402

CROP = Window(200, 100, 192, 192)  # col, row, width, height of the 900 x 900 tile
EDGE = 40  # the crop's first rows are blanked to nodata (0), like a scene's edge


def real_crop(shared_data: Path, path: Path) -> tuple[Path, np.ndarray]:
    with rasterio.open(shared_data / "spacenet-atlanta" / "atlanta_pan.tif") as src:
        array = src.read(window=CROP)
        crs, transform = src.crs, src.window_transform(CROP)
    array[:, :EDGE] = 0
    return write_geotiff(path, array, crs, transform, 0), array[0]


@pytest.mark.slow
def test_pseudo_labels_of_a_real_scene_are_on_its_grid_and_prepare_keeps_them_soft(shared_data, tmp_path) -> None:
    scene, pixels = real_crop(shared_data, tmp_path / "in" / "atlanta.tif")
    valid = pixels != 0
    mean, std = float(pixels[valid].mean()), float(pixels[valid].std())
    model = PointwiseModel(1)  # equivariant under every flip: the TTA average equals one pass
    with torch.no_grad():
        model.conv.weight.fill_(1.5)
        model.conv.bias.fill_(-0.25)
    bundle = make_bundle(model, heads={"mask": HeadSpec(activation="sigmoid")}, chip=64,
                         stats=image_stats(["image"], mean, std, nodata=0, dtype="uint16"))
    config = bundle.config.model_copy(deep=True)
    config.predict = config.predict.model_copy(update={"window": 128, "overlap": 32, "tta": "flips"})
    result = pseudo_label([bundle], [{"image": scene}], tmp_path / "out", config, progress=False)

    labels = result.labels["atlanta"]
    with rasterio.open(scene) as image, rasterio.open(labels) as src:
        assert (src.crs, src.transform, src.width, src.height) == (image.crs, image.transform, 192, 192)
        assert src.dtypes == ("float32",)
        soft = src.read(1)
    assert np.isnan(soft[~valid]).all() and np.isfinite(soft[valid]).all()  # nodata stays no label
    expected = 1.0 / (1.0 + np.exp(-(1.5 * (pixels.astype(np.float64) - mean) / std - 0.25)))
    np.testing.assert_allclose(soft[valid], expected[valid], atol=2e-3)  # float16 probabilities in between
    assert 0.1 < float(np.mean((soft[valid] > 0.05) & (soft[valid] < 0.95)))  # probabilities, not 0/1
    assert result.chips == 9 and result.kept == 9  # 3 x 3 chips of 64 px; soft keeps every labelled chip

    # eoseg prepare reads the pseudo-label scene list with the soft-label raster as a soft target
    prepared = validate_config({
        "data": {"root": str(tmp_path / "chips"), "scenes_file": str(result.scenes_csv), "folds": 1,
                 "chips": {"size": 64, "overlap": 0}, "targets": {"mask": {"kind": "raster", "soft": True}}},
        "model": {"heads": {"mask": {"channels": 1, "activation": "sigmoid"}}},
    })
    prepare(prepared, progress=False)
    root = tmp_path / "chips"
    manifest = read_manifest(root)
    dataset = ChipDataset(root, manifest, read_prepared_stats(root), prepared.data,
                          build_task_kind(prepared).head_targets)
    assert len(dataset) == 9
    for index, chip in enumerate(manifest["chip_id"]):
        row, col = (int(part[1:]) for part in chip.split("-")[-2:])
        target = dataset[index]["targets"]["mask"].numpy()[0]
        window = soft[row:row + 64, col:col + 64]
        assert np.array_equal(np.isnan(target), np.isnan(window)), chip
        np.testing.assert_allclose(target[~np.isnan(target)], window[~np.isnan(window)], atol=1e-6)
    assert pd.read_csv(result.confidence)["kept"].all()
