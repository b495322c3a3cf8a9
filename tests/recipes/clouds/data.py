"""A small Kaggle Understanding Clouds dataset in Kaggle's own layout (train.csv + train_images/ + test_images/).

Each image is 1400 x 2100 RGB (JPEG, no georeference) over a grey textured background; every cloud
class is a rectangle with its own colour cast (Fish red, Flower green, Gravel blue, Sugar bright), so a
small model can learn them. Some (image, class) pairs are empty, as in the real data. Masks are written
as Kaggle writes them: RLE, 1-indexed, column-major, on the 1400 x 2100 image.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning

from eoseg.formats.clouds import IMAGE_SHAPE, LABELS
from eoseg.formats.rle import rle_encode

CAST = {"Fish": (90, -30, -30), "Flower": (-30, 90, -30), "Gravel": (-30, -30, 90), "Sugar": (70, 70, 70)}


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """RGB ``(3, H, W)`` uint8 as a JPEG (GDAL writes JPEG by copying another dataset)."""
    tif = path.with_suffix(".tmp.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        profile = {"driver": "GTiff", "count": 3, "height": image.shape[1], "width": image.shape[2], "dtype": "uint8"}
        with rasterio.open(tif, "w", **profile) as dst:
            dst.write(image)
    rasterio.shutil.copy(tif, path, driver="JPEG", QUALITY=95)
    tif.unlink()
    Path(f"{path}.aux.xml").unlink(missing_ok=True)


def make_image(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One image and its four class masks."""
    height, width = IMAGE_SHAPE
    base = rng.normal(110, 12, (height // 50, width // 50)).repeat(50, 0).repeat(50, 1)
    image = np.repeat(base[None], 3, axis=0)
    masks = {}
    for label in LABELS:
        mask = np.zeros(IMAGE_SHAPE, np.uint8)
        if rng.random() < 0.6:
            h, w = rng.integers(300, 700), rng.integers(400, 1000)
            r, c = rng.integers(0, height - h), rng.integers(0, width - w)
            mask[r : r + h, c : c + w] = 1
            image[:, mask > 0] += np.asarray(CAST[label], float)[:, None]
        masks[label] = mask
    return np.clip(image, 20, 250).astype(np.uint8), masks


def make_clouds_dataset(root: Path, n_train: int = 8, n_test: int = 2, seed: int = 0) -> Path:
    """Write ``root/train.csv``, ``root/train_images/*.jpg`` and ``root/test_images/*.jpg``; return root."""
    rng = np.random.default_rng(seed)
    for folder in ("train_images", "test_images"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_train + n_test):
        image, masks = make_image(rng)
        name = f"{i:04x}a{seed}.jpg"
        if i < n_train:
            write_jpeg(root / "train_images" / name, image)
            rows += [(f"{name}_{label}", rle_encode(masks[label])) for label in LABELS]
        else:
            write_jpeg(root / "test_images" / name, image)
    with open(root / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Image_Label", "EncodedPixels"])
        writer.writerows(rows)
    return root


if __name__ == "__main__":
    import sys

    print(make_clouds_dataset(Path(sys.argv[1] if len(sys.argv) > 1 else "clouds-kaggle")))
