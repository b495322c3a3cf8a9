"""A tiny xBD / xView2 dataset in the competition's own layout (run as a script to look at it).

``make_xbd(root)`` paints pre-disaster scenes with eoseg's synthetic town and post-disaster scenes where
each building shows its damage (roof tint for minor, partly rubble for major, all rubble when destroyed):

    train/images/<disaster>_<id:08d>_{pre,post}_disaster.png      RGB PNG, no georeference
    train/labels/<disaster>_<id:08d>_{pre,post}_disaster.json     xBD JSON: features.xy (pixel WKT), lng_lat
    test/images/test_{pre,post}_<id:05d>.png
    test/targets/test_{localization,damage}_<id:05d>_target.png   xView2 targets (0..4)

xBD tiles are 1024 px; these are ``size`` px (small for CI). Training buildings include ``un-classified``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import shapely
from PIL import Image
from rasterio.features import rasterize

from eoseg.demo.town import paint_scene
from eoseg.formats.xbd import DAMAGE_CLASSES

DISASTER = "town-flood"
RUBBLE = np.array([120, 104, 88], np.float32)


def _damaged(rng: np.random.Generator, image: np.ndarray, polygon: shapely.Polygon, subtype: str) -> None:
    mask = rasterize([polygon], out_shape=image.shape[:2]).astype(bool)
    if subtype == "minor-damage":
        image[mask] = (image[mask] * 0.75 + RUBBLE * 0.25).astype(np.uint8)
    elif subtype in ("major-damage", "destroyed"):
        keep = rng.random(mask.sum()) < (0.4 if subtype == "major-damage" else 0.0)
        rubble = np.clip(RUBBLE + rng.normal(0, 12, (mask.sum(), 3)), 0, 255).astype(np.uint8)
        image[mask] = np.where(keep[:, None], image[mask], rubble)


def _label_json(path: Path, name: str, size: int, buildings: list[tuple[shapely.Polygon, str | None]]) -> None:
    def feature(polygon: shapely.Polygon, subtype: str | None, uid: int, lnglat: bool) -> dict:
        geom = shapely.affinity.affine_transform(polygon, [1e-5, 0, 0, -1e-5, -90.0, 30.0]) if lnglat else polygon
        props = {"feature_type": "building", "uid": f"b{uid}", **({"subtype": subtype} if subtype else {})}
        return {"properties": props, "wkt": shapely.to_wkt(geom)}

    doc = {
        "metadata": {"width": size, "height": size, "disaster": DISASTER, "disaster_type": "flooding",
                     "img_name": name},
        "features": {
            "lng_lat": [feature(p, s, i, True) for i, (p, s) in enumerate(buildings)],
            "xy": [feature(p, s, i, False) for i, (p, s) in enumerate(buildings)],
        },
    }
    path.write_text(json.dumps(doc))


def make_xbd(root: Path, n_train: int = 3, size: int = 128, seed: int = 5) -> dict[str, Path]:
    """Write the dataset under ``root``; returns the train folder, the test pair and the targets folder."""
    rng = np.random.default_rng(seed)
    subtypes = [*DAMAGE_CLASSES, "un-classified"]
    for split in ("train/images", "train/labels", "test/images", "test/targets"):
        (root / split).mkdir(parents=True, exist_ok=True)
    for k in range(n_train + 1):
        pre, buildings = paint_scene(rng, size, 0.5)
        post = pre.copy()
        labelled = []
        for b in buildings:
            choice = subtypes[int(rng.integers(0, 4 if k == n_train else 5))]  # test: no un-classified
            _damaged(rng, post, b.footprint, choice)
            labelled.append((b.footprint, choice))
        if k < n_train:
            stem = f"{DISASTER}_{k:08d}"
            for when, image in (("pre", pre), ("post", post)):
                Image.fromarray(image).save(root / "train/images" / f"{stem}_{when}_disaster.png")
                label = [(p, s if when == "post" else None) for p, s in labelled]
                _label_json(root / "train/labels" / f"{stem}_{when}_disaster.json", f"{stem}_{when}_disaster.png",
                            size, label)
        else:
            ident = f"{k:05d}"
            for when, image in (("pre", pre), ("post", post)):
                Image.fromarray(image).save(root / "test/images" / f"test_{when}_{ident}.png")
            damage = np.zeros((size, size), np.uint8)
            for polygon, subtype in labelled:
                burnt = rasterize([polygon], out_shape=(size, size)).astype(bool)
                damage[burnt] = DAMAGE_CLASSES[subtype]
            targets = root / "test/targets"
            cv2.imwrite(str(targets / f"test_localization_{ident}_target.png"), (damage > 0).astype(np.uint8))
            cv2.imwrite(str(targets / f"test_damage_{ident}_target.png"), damage)
    ident = f"{n_train:05d}"
    return {
        "train": root / "train",
        "pre": root / "test/images" / f"test_pre_{ident}.png",
        "post": root / "test/images" / f"test_post_{ident}.png",
        "targets": root / "test/targets",
    }


if __name__ == "__main__":
    print(make_xbd(Path(sys.argv[1] if len(sys.argv) > 1 else "xbd-sample")))
