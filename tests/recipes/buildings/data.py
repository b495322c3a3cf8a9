"""A tiny SpaceNet building dataset in the competition's own layout (run as a script to look at it).

``make_spacenet(root)`` writes, from eoseg's synthetic town (RGB, 0.5 m, UTM):

    AOI_1_Town_Train/RGB-PanSharpen/RGB-PanSharpen_AOI_1_Town_img<k>.tif
    AOI_1_Town_Train/geojson/buildings/buildings_AOI_1_Town_img<k>.geojson      (EPSG:4326, as SpaceNet)
    AOI_1_Town_Train/summaryData/AOI_1_Town_Train_Building_Solutions.csv        (truth CSV, pixel + geo WKT)
    AOI_1_Town_Test/RGB-PanSharpen/RGB-PanSharpen_AOI_1_Town_img<k>.tif          (held out)
    AOI_1_Town_Test_Building_Solutions.csv                                      (its truth, for scoring)
    AOI_1_Town_Test_buildings.geojson                  the same truth as polygons (pixel IoU, Open Cities' metric)

SpaceNet's RGB-PanSharpen tiles are uint16 and 650 px; these are uint8 and ``size`` px (small for CI). The
roofs are light grey and white only (:data:`BRIGHT_ROOFS`), so that a model trained for a few dozen steps on two
tiles already finds the buildings of the third (with the town's full palette, red and teal roofs in the test
tile that no training tile has stay unseen).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import rasterio

from eoseg.demo.town import ROOF_COLOURS, TownStyle, make_town
from eoseg.formats.spacenet import write_spacenet_csv

AOI = "AOI_1_Town"
BRIGHT_ROOFS = TownStyle({name: ROOF_COLOURS[name] for name in ("light grey", "white")})


def make_spacenet(root: Path, n_train: int = 2, n_test: int = 1, size: int = 128, seed: int = 3) -> dict[str, Path]:
    """Write the dataset under ``root``; returns the train folder, test image folder and the test truth CSV."""
    town = make_town(root / "_town", seed=seed, n_scenes=n_train + n_test, size=size, holdout=n_test,
                     nodata_border=False, style=BRIGHT_ROOFS)
    truths: dict[str, list[pd.DataFrame]] = {"Train": [], "Test": []}
    for k, scene in enumerate(town):
        split = "Train" if scene.split == "train" else "Test"
        image_id = f"{AOI}_img{k + 1}"
        folder = root / f"{AOI}_{split}"
        image = folder / "RGB-PanSharpen" / f"RGB-PanSharpen_{image_id}.tif"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scene.image, image)
        buildings = gpd.read_file(scene.footprints)
        if split == "Test":
            buildings.to_file(root / f"{AOI}_Test_buildings.geojson", driver="GeoJSON")
        if split == "Train":
            label = folder / "geojson" / "buildings" / f"buildings_{image_id}.geojson"
            label.parent.mkdir(parents=True, exist_ok=True)
            buildings.to_crs("EPSG:4326").to_file(label, driver="GeoJSON")
        with rasterio.open(image) as src:
            transform = src.transform
        frame = gpd.GeoDataFrame({"image_id": image_id, "building_id": range(len(buildings))},
                                 geometry=buildings.geometry.to_numpy(), crs=buildings.crs)
        csv = root / f"_{image_id}.csv"
        write_spacenet_csv(csv, frame, "geo", {image_id: transform})
        truths[split].append(pd.read_csv(csv))
        csv.unlink()
    shutil.rmtree(root / "_town")
    summary = root / f"{AOI}_Train" / "summaryData" / f"{AOI}_Train_Building_Solutions.csv"
    summary.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(truths["Train"]).to_csv(summary, index=False)
    test_truth = root / f"{AOI}_Test_Building_Solutions.csv"
    pd.concat(truths["Test"]).to_csv(test_truth, index=False)
    return {"train": root / f"{AOI}_Train", "test": root / f"{AOI}_Test" / "RGB-PanSharpen", "truth": test_truth,
            "truth_polygons": root / f"{AOI}_Test_buildings.geojson"}


if __name__ == "__main__":
    print(make_spacenet(Path(sys.argv[1] if len(sys.argv) > 1 else "spacenet-sample")))
