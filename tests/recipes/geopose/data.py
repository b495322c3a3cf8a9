"""A small Overhead Geopose dataset in the competition's own layout.

``metadata.csv`` (id, city, gsd), ``train/<id>_RGB.j2k`` (JPEG 2000, no georeference),
``train/<id>_AGL.tif`` (uint16 cm, 65535 where there is no LiDAR) and ``train/<id>_VFLOW.json``
(``scale`` px/cm, ``angle`` rad), ``test/<id>_RGB.j2k``, and the test truth in ``test-truth/`` (as the
organisers kept it) for scoring. Buildings are boxes whose brightness grows with their height, so a
small model can learn height; each city has its own flow angle and scale.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning

CITIES = {"JAX": (0.6, 0.004), "OMA": (3.5, 0.006)}  # angle (rad), scale (px/cm)
SIZE = 128


def _write(path: Path, array: np.ndarray, driver: str = "GTiff", nodata: float | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        profile = {
            "driver": "GTiff",
            "count": array.shape[0],
            "height": array.shape[1],
            "width": array.shape[2],
            "dtype": array.dtype.name,
            "nodata": nodata,
        }
        if driver == "GTiff":
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(array)
            return
        tmp = path.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array)
        rasterio.shutil.copy(tmp, path, driver=driver, QUALITY=95, REVERSIBLE=True)
        tmp.unlink()
    Path(f"{path}.aux.xml").unlink(missing_ok=True)


def make_tile(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RGB ``(3, S, S)`` uint8 and AGL ``(S, S)`` uint16 cm (65535 = missing)."""
    agl = np.zeros((SIZE, SIZE), np.float64)
    for _ in range(rng.integers(3, 7)):
        h, w = rng.integers(12, 40, 2)
        r, c = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        agl[r : r + h, c : c + w] = rng.uniform(300, 3000)  # 3 to 30 m
    rgb = 60 + agl[None] / 3000 * 150 + rng.normal(0, 4, (3, SIZE, SIZE))
    agl_cm = np.rint(agl).astype(np.uint16)
    agl_cm[rng.random((SIZE, SIZE)) < 0.02] = 65535  # LiDAR gaps
    return np.clip(rgb, 1, 255).astype(np.uint8), agl_cm


def make_geopose_dataset(root: Path, per_city: int = 3, test_per_city: int = 1, seed: int = 0) -> Path:
    """Write the layout under ``root``; return root."""
    rng = np.random.default_rng(seed)
    for folder in ("train", "test", "test-truth"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for city, (angle, scale) in CITIES.items():
        for i in range(per_city + test_per_city):
            tile = f"{city}_t{i:03d}"
            rgb, agl = make_tile(rng)
            folder = root / ("train" if i < per_city else "test")
            _write(folder / f"{tile}_RGB.j2k", rgb, driver="JP2OpenJPEG")
            truth = folder if i < per_city else root / "test-truth"
            _write(truth / f"{tile}_AGL.tif", agl[None], nodata=65535)
            (truth / f"{tile}_VFLOW.json").write_text(json.dumps({"scale": scale, "angle": angle}))
            rows.append(f"{tile},{city},0.{rng.integers(30, 60)}")
    (root / "metadata.csv").write_text("id,city,gsd\n" + "\n".join(rows) + "\n")
    return root


if __name__ == "__main__":
    import sys

    print(make_geopose_dataset(Path(sys.argv[1] if len(sys.argv) > 1 else "geopose-data")))
