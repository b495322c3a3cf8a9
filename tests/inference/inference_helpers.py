"""Helpers for the scene inference tests: tiny models, bundles built without training, GeoTIFF scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS
from torch import nn

from eoseg.config.schema import (
    ChipSpec,
    DataSpec,
    ExperimentConfig,
    HeadSpec,
    ModelSpec,
    TargetSpec,
    TaskSpec,
)
from eoseg.geo.raster import write_geotiff
from eoseg.models.bundle import ModelBundle

TRANSFORM = Affine(0.5, 0.0, 733600.0, 0.0, -0.5, 3725140.0)
CRS_UTM = CRS.from_epsg(32616)


class IdentityModel(nn.Module):
    """Outputs its first input channel as the ``mask`` head (probabilities with an identity activation)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": x[:, :1]}


class PointwiseModel(nn.Module):
    """A 1x1 convolution: equivariant under every flip, rotation and transpose."""

    def __init__(self, channels: int, out: int = 1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(channels, out, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": self.conv(x)}


def image_stats(
    bands: list[str], mean: float = 0.0, std: float = 1.0, nodata: float | None = 0, dtype: str = "uint8"
) -> dict:
    """A stats.json mapping for one image called ``image``."""
    return {
        "inputs": bands,
        "bands": {"image": bands},
        "nodata": {"image": nodata},
        "dtypes": {"image": dtype},
        "channels": [
            {
                "name": b,
                "count": 1,
                "mean": mean,
                "std": std,
                "min": 0.0,
                "max": 255.0,
                "p2": 0.0,
                "p98": 255.0,
            }
            for b in bands
        ],
    }


def make_bundle(
    model: nn.Module,
    bands: list[str] | None = None,
    heads: dict[str, HeadSpec] | None = None,
    task: str = "binary",
    chip: int = 64,
    mean: float = 0.0,
    std: float = 1.0,
    classes: list[str] | None = None,
    stats: dict | None = None,
    dtype: str = "uint8",
) -> ModelBundle:
    """A ModelBundle around ``model`` with a config and band statistics (no checkpoint needed)."""
    bands = bands or ["image"]
    heads = heads or {"mask": HeadSpec(activation="identity")}
    config = ExperimentConfig(
        # a target per head, as every trained config has (test_predict_post covers a checkpoint without)
        data=DataSpec(chips=ChipSpec(size=chip, overlap=0), classes=classes or ["background", "building"],
                      targets={h.target or n: TargetSpec() for n, h in heads.items()}),
        model=ModelSpec(heads=heads),
        task=TaskSpec(kind=task),
        loss={},
    )
    return ModelBundle(model=model.eval(), config=config, stats=stats or image_stats(bands, mean, std, dtype=dtype))


def write_scene(
    path: Path,
    array: np.ndarray,
    nodata: float | None = 0,
    crs: CRS | None = CRS_UTM,
    transform: Affine = TRANSFORM,
) -> Path:
    """Write ``array (C, H, W)`` as a GeoTIFF scene."""
    return write_geotiff(path, array, crs, transform, nodata)
