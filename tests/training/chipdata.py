"""Builder of tiny synthetic prepared datasets (docs/design.md, "Prepared dataset") for training tests.

``write_chips(root, kind)`` writes ``chips/<scene>/<chip_id>.<name>.tif`` GeoTIFFs, ``manifest.parquet``
and ``stats.json`` for one of the five task kinds; objects are rectangles that are easy to see in the
images, so a small model learns them in a few steps. ``tiny_config(root, kind, out)`` is the matching
experiment config (resnet18-Unet with small decoder channels, CPU, no workers).

Chip 0 of scene 0 has its 4 leftmost columns as image nodata (an edge chip); its targets say ignore there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS

from eoseg.config.loader import validate_config
from eoseg.config.schema import ExperimentConfig
from eoseg.data.bandmath import BandMath
from eoseg.data.stats import write_stats
from eoseg.geo.raster import valid_mask, write_geotiff

CRS_UTM = CRS.from_epsg(32616)
IGNORE = 255
NODATA_COLUMNS = 4

# kind -> (images {name: (bands, dtype, nodata)}, targets {name: (kind, bands, dtype, nodata, classes)})
LAYOUTS: dict[str, tuple[dict[str, tuple[int, str, float]], dict[str, tuple[str, int, str, float, int]]]] = {
    "binary": ({"image": (3, "uint8", 0)}, {"mask": ("vector", 1, "uint8", IGNORE, 2)}),
    "multiclass": ({"image": (3, "uint8", 0)}, {"mask": ("vector", 1, "uint8", IGNORE, 3)}),
    "multilabel": ({"image": (3, "uint8", 0)}, {"clouds": ("raster", 2, "uint8", IGNORE, 0)}),
    "change": (
        {"pre": (3, "uint8", 0), "post": (3, "uint8", 0)},
        {"mask": ("vector", 1, "uint8", IGNORE, 2), "damage": ("vector", 1, "uint8", IGNORE, 5)},
    ),
    "regression": (
        {"image": (3, "uint16", 0)},
        {"height": ("raster", 1, "float32", -9999.0, 0), "flow": ("raster", 2, "float32", -9999.0, 0)},
    ),
}


def _rectangles(rng: np.random.Generator, size: int, count: int) -> list[tuple[int, int, int, int]]:
    out = []
    for _ in range(count):
        h, w = rng.integers(size // 6, size // 3, 2)
        r, c = rng.integers(0, size - h), rng.integers(0, size - w)
        out.append((int(r), int(c), int(h), int(w)))
    return out


def _sample(kind: str, rng: np.random.Generator, size: int, empty: bool) -> tuple[dict[str, np.ndarray], dict]:
    """Images and targets of one chip (before nodata)."""
    images_spec, targets_spec = LAYOUTS[kind]
    noise = lambda bands: rng.normal(60, 8, (bands, size, size))  # noqa: E731
    rects = [] if empty else _rectangles(rng, size, int(rng.integers(1, 4)))
    if kind in ("binary", "multiclass"):
        image, mask = noise(3), np.zeros((1, size, size), np.uint8)
        for i, (r, c, h, w) in enumerate(rects):
            cls = 1 if kind == "binary" else 1 + i % 2
            mask[0, r:r + h, c:c + w] = cls
            image[cls - 1 if kind == "multiclass" else slice(None), r:r + h, c:c + w] += 120
        return {"image": image}, {"mask": mask}
    if kind == "multilabel":
        image, labels = noise(3), np.zeros((2, size, size), np.uint8)
        for i, (r, c, h, w) in enumerate(rects):
            labels[i % 2, r:r + h, c:c + w] = 1
        image[0] += 120 * labels[0]
        image[1] += 120 * labels[1]
        return {"image": image}, {"clouds": labels}
    if kind == "change":
        pre, post = noise(3), noise(3)
        mask, damage = np.zeros((1, size, size), np.uint8), np.zeros((1, size, size), np.uint8)
        for r, c, h, w in rects:
            level = int(rng.integers(1, 5))
            mask[0, r:r + h, c:c + w], damage[0, r:r + h, c:c + w] = 1, level
            pre[:, r:r + h, c:c + w] += 120
            post[:, r:r + h, c:c + w] += 150 - 30 * level
        return {"pre": pre, "post": post}, {"mask": mask, "damage": damage}
    height = np.zeros((1, size, size), np.float32)
    for r, c, h, w in rects:
        height[0, r:r + h, c:c + w] = rng.uniform(3, 20)
    image = rng.normal(1000, 40, (3, size, size)) + 80 * height
    angle = rng.uniform(0, 2 * np.pi)
    flow = np.stack([np.sin(angle) * height[0], np.cos(angle) * height[0]]).astype(np.float32)
    flow[:, height[0] == 0] = -9999.0  # direction only where something stands
    return {"image": image}, {"height": height, "flow": flow}


def write_chips(root: Path, kind: str = "binary", scenes: int = 3, per_scene: int = 4, size: int = 32,
                seed: int = 0, same_scenes: bool = False, inputs: list[str] | None = None) -> Path:
    """Write a prepared dataset for ``kind`` at ``root`` (3 scenes -> folds 0, 1, 2); return ``root``.

    ``same_scenes`` gives every scene the same chips (validation then measures fitting the training chips);
    ``inputs`` are band-math inputs (default: all bands).
    """
    rng = np.random.default_rng(seed)
    images_spec, targets_spec = LAYOUTS[kind]
    bands = {name: [f"{name}_{i}" for i in range(1, n + 1)] for name, (n, _, _) in images_spec.items()}
    bandmath = BandMath(inputs or [], bands)
    rows, inputs = [], []
    for s in range(scenes):
        scene = f"scene{s}"
        rng = np.random.default_rng(seed) if same_scenes else rng
        for k in range(per_scene):
            cid = f"{scene}-s1-r{k * size}-c0"
            images, targets = _sample(kind, rng, size, empty=k == per_scene - 1)
            valid = np.ones((size, size), bool)
            if s == 0 and k == 0:
                valid[:, :NODATA_COLUMNS] = False
            transform = Affine(0.5, 0, 500000 + s * 1000, 0, -0.5, 3700000 - k * size * 0.5)
            row: dict[str, Any] = {
                "chip_id": cid, "scene": scene, "region": None, "scale": 1.0, "res_x": 0.5, "res_y": 0.5,
                "row_off": k * size, "col_off": 0, "height": size, "width": size, "size": size,
                "crs": CRS_UTM.to_string(), "fold": s, "valid_fraction": float(valid.mean()),
            }
            arrays = {}
            for name, (_, dtype, nodata) in images_spec.items():
                info = np.iinfo(dtype)
                array = np.clip(np.round(images[name]), 1, info.max).astype(dtype)
                array[:, ~valid] = nodata
                arrays[name] = array
                rel = Path("chips") / scene / f"{cid}.{name}.tif"
                write_geotiff(root / rel, array, CRS_UTM, transform, nodata)
                row[f"image:{name}"] = rel.as_posix()
            for name, (tkind, _, dtype, nodata, classes) in targets_spec.items():
                array = targets[name].astype(dtype)
                array[:, ~valid] = nodata
                rel = Path("chips") / scene / f"{cid}.{name}.tif"
                write_geotiff(root / rel, array, CRS_UTM, transform, nodata)
                row[f"target:{name}"] = rel.as_posix()
                if tkind == "vector":
                    counts = np.bincount(array[0][valid], minlength=classes)
                    row.update({f"frac:{name}:{c}": counts[c] / valid.sum() for c in range(classes)})
                else:
                    labelled = valid_mask(array, nodata) & valid
                    row[f"frac:{name}"] = float(labelled.mean())
            rows.append(row)
            inputs.append(bandmath.apply(arrays)[:, valid])
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    values = np.concatenate(inputs, axis=1)
    channels = [
        {"name": b, "count": int(values.shape[1]), "mean": float(v.mean()), "std": float(v.std()),
         "min": float(v.min()), "max": float(v.max()), "p2": float(np.percentile(v, 2)),
         "p98": float(np.percentile(v, 98))}
        for b, v in zip(bandmath.inputs, values, strict=True)
    ]
    write_stats(root / "stats.json", {
        "inputs": bandmath.inputs, "bands": bands,
        "nodata": {name: nodata for name, (_, _, nodata) in images_spec.items()},
        "dtypes": {name: dtype for name, (_, dtype, _) in images_spec.items()},
        "channels": channels,
    })
    return root


def tiny_config(root: Path, kind: str, out: Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """A small, fast config training ``kind`` on the chips at ``root``, writing runs under ``out``."""
    images_spec, targets_spec = LAYOUTS[kind]
    raw: dict[str, Any] = {
        "name": f"tiny-{kind}",
        "data": {
            "root": str(root),
            "targets": {t: {"kind": spec[0]} for t, spec in targets_spec.items()},
            "classes": {"multiclass": ["background", "a", "b"], "multilabel": ["low", "high"],
                        "change": ["background", "no", "minor", "major", "destroyed"]}.get(
                kind, ["background", "building"]),
            "chips": {"size": 32, "overlap": 0},
            "folds": 3,
            "fold": 0,
        },
        "model": {
            "arch": "Unet", "encoder": "resnet18",
            "arch_params": {"encoder_depth": 3, "decoder_channels": [16, 16, 8]},
            "heads": {
                "binary": {"mask": {"channels": 1}},
                "multiclass": {"mask": {"channels": 3}},
                "multilabel": {"clouds": {"channels": 2}},
                "change": {"mask": {"channels": 1}, "damage": {"channels": 4, "activation": "softmax"}},
                "regression": {"height": {"channels": 1}, "direction": {"kind": "direction", "target": "flow"}},
            }[kind],
        },
        "task": {"kind": kind},
        "loss": {
            "binary": {"mask": {"bce": 1.0, "dice": 1.0}},
            "multiclass": {"mask": {"ce": 1.0}},
            "multilabel": {"clouds": {"bce": 1.0}},
            "change": {"mask": {"bce": 1.0}, "damage": {"ce": 1.0}},
            "regression": {"height": {"huber": 1.0}, "direction": {"cosine": 1.0}},
        }[kind],
        "optim": {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0},
        "train": {
            "out": str(out), "epochs": 1, "batch_size": 4, "num_workers": 0, "accelerator": "cpu", "devices": 1,
            "tensorboard": False, "seed": 7,
            **({"monitor": "val/rmse", "monitor_mode": "min"} if kind == "regression" else {}),
        },
    }
    if kind == "change":
        raw["model"]["siamese"] = {"fusion": "concat"}
    for key, value in (overrides or {}).items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return validate_config(raw, "tiny config")
