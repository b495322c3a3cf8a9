"""Helpers of the reliability catalogue: small rasters, truth polygons, a real checkpoint, running the command
line and hashing files (so a test can show that nothing written earlier changed)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import torch
from affine import Affine
from shapely.geometry import box

from eoseg.cli.app import main
from eoseg.config.schema import ChipSpec, DataSpec, ExperimentConfig, ModelSpec, TaskSpec
from eoseg.geo.raster import write_geotiff

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """Run ``eoseg ARGS`` in-process; return the exit status and the message's line on stderr (the first
    ``error:``/``warning:`` line; predict prints its per-scene table before it), else the first line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert not any("Traceback" in line for line in err), err
    messages = [line for line in err if line.startswith(("error: ", "warning: "))]
    return exit_info.value.code or 0, messages[0] if messages else (err[0] if err else "")


def eoseg_process(*args: object, **kwargs: object) -> subprocess.Popen[str]:
    """``python -m eoseg ARGS`` as a child process (for signals), output captured."""
    return subprocess.Popen([sys.executable, "-m", "eoseg", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]


def hashes(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (files or folders), by path."""
    out = {}
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def rasters(tmp_path: Path) -> dict[str, Path]:
    """A 16x16 mask (two buildings), its probabilities, and the truth polygons as a GeoPackage."""
    mask = np.zeros((16, 16), np.uint8)
    mask[2:7, 2:9] = 1
    mask[10:14, 10:14] = 1
    prob = np.where(mask > 0, 230, 20).astype(np.uint8)
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    polygons = [box(x0 + 1.0, y0 - 3.5, x0 + 4.5, y0 - 1.0), box(x0 + 5.0, y0 - 7.0, x0 + 7.0, y0 - 5.0)]
    truth = tmp_path / "truth.gpkg"
    gpd.GeoDataFrame({"class": [1, 1]}, geometry=polygons, crs=UTM).to_file(truth)
    return {
        "mask": write_geotiff(tmp_path / "s.mask.tif", mask[None], UTM, TRANSFORM, 255),
        "prob": write_geotiff(tmp_path / "s.prob.tif", prob[None], UTM, TRANSFORM, None),
        "truth": truth,
    }


def image_stats(bands: list[str], dtype: str = "uint8", low: float = 0.0, high: float = 255.0) -> dict:
    """A ``stats.json`` mapping for one image called ``image`` of ``dtype`` with values in [low, high]."""
    channel = {"count": 1, "mean": (low + high) / 2, "std": (high - low) / 4 or 1.0, "min": low, "max": high,
               "p2": low, "p98": high}
    return {"inputs": bands, "bands": {"image": bands}, "nodata": {"image": 0}, "dtypes": {"image": dtype},
            "channels": [{"name": b, **channel} for b in bands]}


def write_checkpoint(path: Path, kind: str = "binary", bands: int = 1, classes: list[str] | None = None,
                     dtype: str = "uint8", high: float = 255.0) -> Path:
    """A real eoseg checkpoint of a small random Unet-resnet18, as ``eoseg train`` writes it."""
    from eoseg.models.factory import build_model
    from eoseg.training.checkpoint import describe

    classes = classes or (["background", "building"] if kind == "binary" else ["background", "a", "b"])
    heads = {"mask": {"channels": 1 if kind == "binary" else len(classes)}}
    config = ExperimentConfig(
        data=DataSpec(chips=ChipSpec(size=64, overlap=0), classes=classes),
        model=ModelSpec(arch="Unet", encoder="resnet18", heads=heads,
                        arch_params={"encoder_depth": 3, "decoder_channels": [32, 16, 8]}),
        task=TaskSpec(kind=kind),
        loss={"mask": {"dice": 1.0}},
    )
    names = ["image"] if bands == 1 else [f"image_{i + 1}" for i in range(bands)]
    torch.manual_seed(0)
    model = build_model(config.model, config.task, bands)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    entry = describe(config, image_stats(names, dtype, 0.0, high), [])
    torch.save({"eoseg": entry, "state_dict": state, "epoch": 0, "global_step": 0}, path)
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary one-band uint8 checkpoint."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "binary.ckpt")


def write_scene(path: Path, array: np.ndarray, nodata: float | None = 0, crs: str | None = UTM) -> Path:
    """``array (C, H, W)`` as a GeoTIFF scene on the test grid."""
    return write_geotiff(path, array, crs, TRANSFORM, nodata)
