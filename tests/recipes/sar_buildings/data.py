"""A tiny UNOSAT-style dataset from the real Sen1Floods11 Sentinel-1 chip (run as a script to look at it).

``make_unosat(shared_data, root)`` cuts two 128 px "cities" from ``sen1floods11/Spain_7370579_S1Hand.tif``
(band 1 VV, band 2 VH, in dB, NaN nodata) and writes the challenge's layout, with VV and VH as separate
single-band files and two acquisitions per city (the second one with speckle-like noise):

    38SAA_CityA/s1a_38SAA_vh_ASC_20190105.tif   38SAA_CityA/s1a_38SAA_vv_ASC_20190105.tif
    38SAA_CityA/s1a_38SAA_vh_ASC_20190117.tif   ...
    38SAA_CityA/38SAA_CityA.shp                 footprints: the chip's hand-labelled water polygons stand
                                                in for buildings (the real chip has no building labels)

``scale="linear"`` writes linear power (as UNOSAT delivered it) instead of the chip's dB values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import shapes
from rasterio.windows import Window, transform
from shapely.geometry import shape

CITIES = {"38SAA_CityA": (96, 64), "38SBB_CityB": (288, 320)}  # (row, col) of each 128 px crop
DATES = ("20190105", "20190117")
SIZE = 128


def make_unosat(shared_data: Path, root: Path, scale: str = "db", seed: int = 0) -> dict[str, Path]:
    """Write the dataset under ``root``; returns ``{city: folder}``."""
    rng = np.random.default_rng(seed)
    folder = shared_data / "sen1floods11"
    out = {}
    with (
        rasterio.open(folder / "Spain_7370579_S1Hand.tif") as s1,
        rasterio.open(folder / "Spain_7370579_LabelHand.tif") as lab,
    ):
        for city, (row, col) in CITIES.items():
            window = Window(col, row, SIZE, SIZE)
            grid = transform(window, s1.transform)
            vv_db, vh_db = s1.read(window=window).astype(np.float32)
            water = lab.read(1, window=window)
            city_dir = root / city
            city_dir.mkdir(parents=True, exist_ok=True)
            tile = city.split("_")[0]
            for d, date in enumerate(DATES):
                for pol, db in (("vh", vh_db), ("vv", vv_db)):
                    values = db + (rng.normal(0, 0.5, db.shape).astype(np.float32) if d else 0)
                    if scale == "linear":
                        values = (10 ** (values / 10)).astype(np.float32)
                    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 1, "dtype": "float32",
                               "crs": s1.crs, "transform": grid, "nodata": float("nan")}
                    with rasterio.open(city_dir / f"s1a_{tile}_{pol}_ASC_{date}.tif", "w", **profile) as dst:
                        dst.write(values, 1)
            polygons = [shape for shape, v in shapes((water == 1).astype(np.uint8), transform=grid) if v == 1]
            frame = gpd.GeoDataFrame({"DN": np.ones(len(polygons), int)}, geometry=[shape(p) for p in polygons],
                                     crs=s1.crs)
            frame.to_file(city_dir / f"{city}.shp")
            out[city] = city_dir
    return out


if __name__ == "__main__":
    print(make_unosat(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "unosat-sample")))
