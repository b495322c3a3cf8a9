"""Benchmark ``eoseg prepare``: throughput and peak memory on generated scenes (not a timed test).

Generates an N x N 3-band uint8 scene (0.5 m, UTM, tiled deflate GeoTIFF) with N²/5000 rotated building
footprints (20,000 for 10,000²) in a temporary folder, prepares it into 512 px chips with 64 px overlap,
and prints Mpx/s of scene and the peak resident memory of the process. Each measurement runs in its own
subprocess so its peak memory (VmHWM) is that run's alone. Baseline, measured in the same run: a plain rasterio read
of the same chip windows (no labels, statistics or writing).

Usage: uv run python benchmarks/prepare.py [--sizes 5000 10000]
Targets (2 cores): >= 10 Mpx/s, peak memory < 1.5 GB and not growing with scene size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio import features
from rasterio.transform import from_origin

CRS = "EPSG:32630"
RES = 0.5
ORIGIN = (400_000.0, 5_000_000.0)
BLOCK_ROWS = 512
PX_PER_BUILDING = 5000


def make_buildings(size: int, seed: int = 0) -> gpd.GeoDataFrame:
    """Rotated rectangles of 8..40 px, scattered over the scene (one per 5000 px², 20,000 for 10,000²)."""
    rng = np.random.default_rng(seed)
    n = size * size // PX_PER_BUILDING
    centre = rng.uniform(20, size - 20, (n, 2))
    half = rng.uniform(4, 20, (n, 2))
    angle = rng.uniform(0, np.pi, n)
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    corners = unit[None] * half[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    cols = centre[:, None, 0] + corners[..., 0] * cos - corners[..., 1] * sin
    rows = centre[:, None, 1] + corners[..., 0] * sin + corners[..., 1] * cos
    xy = np.stack([ORIGIN[0] + cols * RES, ORIGIN[1] - rows * RES], axis=-1)
    return gpd.GeoDataFrame({"kind": ["building"] * n}, geometry=shapely.polygons(xy), crs=CRS)


def make_scene(folder: Path, size: int) -> tuple[Path, Path]:
    """Write the scene (block by block, bounded memory) and its footprints (GeoPackage)."""
    transform = from_origin(*ORIGIN, RES, RES)
    buildings = make_buildings(size)
    labels = folder / f"buildings_{size}.gpkg"
    buildings.to_file(labels, driver="GPKG")
    tree = shapely.STRtree(buildings.geometry.values)
    image = folder / f"scene_{size}.tif"
    rng = np.random.default_rng(1)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "interleave": "pixel",
    }
    with rasterio.open(image, "w", **profile) as dst:
        for row in range(0, size, BLOCK_ROWS):
            window = rasterio.windows.Window(0, row, size, min(BLOCK_ROWS, size - row))
            block_transform = rasterio.windows.transform(window, transform)
            shape = (int(window.height), size)
            rr, cc = np.mgrid[row : row + shape[0], 0:size]
            base = 60 + 40 * np.sin(rr / 300.0) * np.cos(cc / 450.0) + rng.integers(0, 12, shape)
            hits = tree.query(shapely.box(*rasterio.windows.bounds(window, transform)))
            roofs = (
                features.rasterize(
                    ((buildings.geometry.values[i], 1) for i in hits),
                    out_shape=shape,
                    transform=block_transform,
                    fill=0,
                    dtype="uint8",
                )
                if len(hits)
                else np.zeros(shape, dtype="uint8")
            )
            bands = [np.clip(base + 120 * roofs + 10 * b, 1, 255).astype("uint8") for b in range(3)]
            dst.write(np.stack(bands), window=window)
    return image, labels


def run_prepare(image: str, labels: str, out: str) -> dict[str, float]:
    """Child process: prepare the scene into 512 px chips (64 px overlap) and time it."""
    from eoseg.config.loader import validate_config
    from eoseg.data.prepare import prepare

    config = validate_config(
        {
            "data": {
                "root": out,
                "folds": 1,
                "bands": {"image": ["red", "green", "blue"]},
                "scenes": [{"id": "bench", "images": {"image": image}, "targets": {"mask": labels}}],
                "targets": {"mask": {"kind": "vector"}},
                "chips": {"size": 512, "overlap": 64, "scales": [1.0]},
            }
        }
    )
    start, cpu = time.perf_counter(), cpu_seconds()
    result = prepare(config, overwrite=True, progress=False)
    return {"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu, "chips": result.chips}


def peak_memory_mb() -> float:
    """Peak resident memory of this process: VmHWM on Linux (ru_maxrss would include the parent's peak,
    which a child inherits across fork and exec), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_baseline(image: str) -> dict[str, float]:
    """Child process: plain rasterio reads of the same 512 px windows (64 px overlap)."""
    from rasterio.windows import Window

    start, cpu = time.perf_counter(), cpu_seconds()
    with rasterio.open(image) as src:
        for row in range(0, src.height, 448):
            for col in range(0, src.width, 448):
                src.read(window=Window(col, row, min(512, src.width - col), min(512, src.height - row)))
    return {"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu}


def measure(*args: str) -> dict[str, float]:
    """Run this script as a child with ``args``; return its figures and peak memory (MB)."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(args: list[str]) -> None:
    figures = run_prepare(*args[1:]) if args[0] == "prepare" else run_baseline(*args[1:])
    figures["peak_mb"] = peak_memory_mb()
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"{'scene':>12} {'chips':>6} {'prepare s':>10} {'Mpx/s':>7} {'cpu s':>6} {'Mpx/cpu-s':>9} {'peak MB':>8} "
        f"{'read s':>7} {'read MB':>8} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory(prefix="eoseg-bench-") as tmp:
        for size in args.sizes:
            image, labels = make_scene(Path(tmp), size)
            base = measure("baseline", str(image))
            prep = measure("prepare", str(image), str(labels), str(Path(tmp) / f"chips_{size}"))
            mpx = size * size / 1e6
            print(
                f"{size:>6}x{size:<5} {prep['chips']:>6} {prep['seconds']:>10.2f} {mpx / prep['seconds']:>7.1f} "
                f"{prep['cpu']:>6.2f} {mpx / prep['cpu']:>9.1f} {prep['peak_mb']:>8.0f} {base['seconds']:>7.2f} "
                f"{base['peak_mb']:>8.0f} {prep['seconds'] / base['seconds']:>6.1f}",
                flush=True,
            )
    print(
        "ratio = prepare wall time / plain rasterio read of the same windows (same run); "
        "Mpx/cpu-s counts CPU time of all threads, so it does not depend on other load on the machine"
    )


if __name__ == "__main__":
    main()
