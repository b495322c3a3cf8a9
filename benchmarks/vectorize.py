"""Benchmark ``eoseg vectorize`` (polygonize by row bands): throughput and peak memory (not a timed test).

Generates an N x N uint8 mask (0.5 m, UTM, tiled deflate GeoTIFF) with one rectangular building per
2,500 px² (a few with holes), then traces it (a) with :func:`eoseg.geo.polygonize.polygonize`, streaming
by row bands of 1,024 rows and merging polygons across band borders, and (b) as the baseline measured in
the same run: the whole band read at once and traced by one ``rasterio.features.shapes`` call (what a
script would do; memory grows with the scene). Each measurement runs in its own subprocess, so
``ru_maxrss`` is that run's peak. Prints Mpx/s, polygon counts (must match), time ratio and peak memory.

Usage: uv run python benchmarks/vectorize.py [--sizes 4096 8192]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

BAND_ROWS = 1024


def make_mask(path: Path, size: int, seed: int = 0) -> None:
    """Rectangles of 6..40 px, every tenth with a hole, written by row bands (memory: one band)."""
    rng = np.random.default_rng(seed)
    n = size * size // 2500
    rows, cols = rng.integers(0, size - 40, n), rng.integers(0, size - 40, n)
    heights, widths = rng.integers(6, 40, n), rng.integers(6, 40, n)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        nodata=255,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        crs="EPSG:32616",
        transform=from_origin(740000.0, 3740000.0, 0.5, 0.5),
    )
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, BAND_ROWS):
            band = np.zeros((min(BAND_ROWS, size - top), size), np.uint8)
            for r, c, h, w, i in zip(rows, cols, heights, widths, range(n), strict=True):
                r0, r1 = max(r, top) - top, min(r + h, top + band.shape[0]) - top
                if r1 > r0:
                    band[r0:r1, c : c + w] = 1
                    if i % 10 == 0 and h > 10 and w > 10:
                        hr0, hr1 = max(r + 4, top) - top, min(r + h - 4, top + band.shape[0]) - top
                        if hr1 > hr0:
                            band[hr0:hr1, c + 4 : c + w - 4] = 0
            dst.write(band[None], window=((top, top + band.shape[0]), (0, size)))


def measure(mode: str, path: str) -> dict:
    """Run in a subprocess: trace the mask one way, report seconds, polygons and peak memory."""
    import shapely.geometry
    from rasterio import features

    from eoseg.geo.polygonize import polygonize  # imports outside the timing, for both modes

    start = time.perf_counter()
    if mode == "stream":
        count = len(polygonize(path, band_rows=BAND_ROWS))
    else:
        with rasterio.open(path) as src:
            data = src.read(1)
            traced = features.shapes(data, mask=(data > 0) & (data != 255), transform=src.transform)
            count = sum(1 for geojson, _ in traced if shapely.geometry.shape(geojson))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "polygons": count, "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"mask_{size}.tif"
            make_mask(path, size)
            results = {}
            for mode in ("whole", "stream"):
                out = subprocess.run(
                    [sys.executable, __file__, "--measure", mode, str(path)], capture_output=True, text=True, check=True
                )
                results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            mpx = size * size / 1e6
            whole, stream = results["whole"], results["stream"]
            print(
                f"{size}x{size}: polygons {stream['polygons']} (baseline {whole['polygons']}); "
                f"stream {mpx / stream['seconds']:.1f} Mpx/s, peak {stream['peak_mb']:.0f} MB; "
                f"whole-raster baseline {mpx / whole['seconds']:.1f} Mpx/s, peak {whole['peak_mb']:.0f} MB; "
                f"time ratio stream/baseline {stream['seconds'] / whole['seconds']:.2f}"
            )


if __name__ == "__main__":
    main()
