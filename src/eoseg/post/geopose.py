"""Overhead Geopose submission files from predicted height, magnitude and direction.

Per tile: the AGL raster is the predicted height (``<name>.height.tif``, metres) written as uint16 in
the declared unit; the VFLOW ``scale`` is the least-squares fit of the predicted flow magnitude on the
predicted height over the tile, ``Σ h·m / (Σ h·h + 0.01)`` (px/m, the seed's parameter-free scale
head, seed-solutions.md §4.5), converted to px/cm; the ``angle`` is ``atan2(x, y)`` of the tile's mean
direction vector (``<name>.heads.json``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from eoseg.errors import ConfigError
from eoseg.formats.geopose import TO_METRES, Unit, Vflow, write_agl, write_vflow
from eoseg.geo.products import read_heads, read_values
from eoseg.geo.raster import no_grid_warning, open_raster

HEIGHT_HEAD, MAGNITUDE_HEAD = "height", "magnitude"


def flow_scale(height: np.ndarray, magnitude: np.ndarray) -> float:
    """Pixels of flow per metre of height: least squares of magnitude on height where both are known."""
    known = np.isfinite(height) & np.isfinite(magnitude)
    h, m = height[known].astype(np.float64), magnitude[known].astype(np.float64)
    return float(np.dot(h, m) / (np.dot(h, h) + 0.01))


def direction_angle(heads_json: str | os.PathLike[str]) -> float:
    """Angle (radians, [0, 2π)) of the mean direction vector (x, y) = (sin θ, cos θ) in ``heads.json``."""
    heads = read_heads(heads_json)
    found = [v for v in heads.values() if v.get("kind") == "direction"]
    if not found:
        raise ConfigError(f"{heads_json}: the model has no direction head; a geopose model needs one (geopose preset)")
    x, y = found[0]["mean"]
    return math.atan2(x, y) % (2 * math.pi)


def write_tile_submission(
    values: dict[str, Path], heads_json: str | os.PathLike[str], out_dir: Path, tile: str, unit: Unit = "cm"
) -> tuple[Path, Path]:
    """Write ``<tile>_AGL.tif`` and ``<tile>_VFLOW.json`` from a tile's predicted value rasters."""
    missing = [h for h in (HEIGHT_HEAD, MAGNITUDE_HEAD) if h not in values]
    if missing:
        raise ConfigError(
            f"tile {tile}: the model has no dense head(s) {missing}; a geopose model predicts "
            f"{HEIGHT_HEAD!r} and {MAGNITUDE_HEAD!r} (geopose preset)"
        )
    arrays = {}
    for head in (HEIGHT_HEAD, MAGNITUDE_HEAD):
        with no_grid_warning(), open_raster(values[head]) as src:
            arrays[head] = read_values(src)[0]
    scale_px_per_m = flow_scale(arrays[HEIGHT_HEAD], arrays[MAGNITUDE_HEAD])
    agl = write_agl(out_dir / f"{tile}_AGL.tif", arrays[HEIGHT_HEAD], unit)
    vflow = Vflow(scale=scale_px_per_m * TO_METRES["cm"], angle=direction_angle(heads_json))
    return agl, write_vflow(out_dir / f"{tile}_VFLOW.json", vflow)
