"""Kaggle Understanding Clouds: ``train.csv`` of RLE masks per (image, label), JPEGs, submission CSV.

The layout Kaggle published::

    train.csv            Image_Label (``<image>.jpg_<Fish|Flower|Gravel|Sugar>``), EncodedPixels (blank = empty)
    train_images/*.jpg   1400 x 2100 RGB, no georeference
    test_images/*.jpg

RLE runs are 1-indexed and column-major on the image's own grid (1400 x 2100 for train.csv,
:mod:`eoseg.formats.rle`); the submission has the same two columns with masks at 350 x 525.
Training images and masks are resized to one training size; their resized rasters get a pixel grid
in units of the submission mask (one unit = one 350 x 525 pixel), so minimum areas are counted in
submission pixels wherever they are applied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError
from eoseg.formats.rle import rle_decode, rle_runs
from eoseg.geo.atomic import atomic_path, write_text_atomic
from eoseg.geo.products import IGNORE
from eoseg.geo.raster import no_grid_warning, open_raster, resize_array, write_geotiff

LABELS = ("Fish", "Flower", "Gravel", "Sugar")
IMAGE_SHAPE = (1400, 2100)
SUBMISSION_SHAPE = (350, 525)
IMAGES_DIR = "train_images"
MASK_NODATA = IGNORE
COLUMNS = ("Image_Label", "EncodedPixels")

CloudMasks = dict[str, dict[str, str]]
"""``{image file name: {label: RLE string}}``."""


def read_clouds_csv(path: str | os.PathLike[str], shape: tuple[int, int] | None = IMAGE_SHAPE) -> CloudMasks:
    """``{image: {label: rle}}`` of a train or submission CSV, in file order; every row is checked.

    ``shape`` (height, width) checks that each run lies inside the mask (None: only the syntax).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: clouds CSV not found; give Kaggle's train.csv or a submission CSV")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc}); expected columns {', '.join(COLUMNS)}") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; a clouds CSV has columns {', '.join(COLUMNS)}")
    masks: CloudMasks = {}
    for row, (key, rle) in enumerate(zip(table["Image_Label"], table["EncodedPixels"], strict=True), start=2):
        image, sep, label = key.rpartition("_")
        if not sep or label not in LABELS:
            raise InputError(
                f"{path}: line {row}: Image_Label {key!r} is not <image>_<label> with a label of {', '.join(LABELS)}"
            )
        try:
            if shape is not None:
                rle_runs(rle, shape)
        except InputError as exc:
            raise InputError(f"{path}: line {row} ({key}): {exc}") from exc
        masks.setdefault(image, {})[label] = rle
    return masks


def write_clouds_csv(path: str | os.PathLike[str], masks: CloudMasks) -> Path:
    """Write ``{image: {label: rle}}`` as a submission CSV (one row per image and label), atomically."""
    rows = [(f"{image}_{label}", masks[image].get(label, "")) for image in masks for label in LABELS]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(tmp, index=False)
    return Path(path)


def submission_grid(shape: tuple[int, int]) -> Affine:
    """Pixel grid of an image resized to ``shape``: one unit = one pixel of the 350 x 525 submission mask."""
    return Affine.scale(SUBMISSION_SHAPE[1] / shape[1], SUBMISSION_SHAPE[0] / shape[0])


def read_jpeg(path: str | os.PathLike[str]) -> np.ndarray:
    """The bands of a JPEG without georeference (``(C, H, W)`` uint8)."""
    with open_raster(path) as src:
        return src.read()


def write_resized_image(image: str | os.PathLike[str], size: tuple[int, int], out: str | os.PathLike[str]) -> Path:
    """The JPEG area-averaged to ``size`` (height, width), as a GeoTIFF on :func:`submission_grid`."""
    array = resize_array(read_jpeg(image), size, "average")
    with no_grid_warning():
        return write_geotiff(out, array, None, submission_grid(size), None)


def source_key(image: str | os.PathLike[str], size: tuple[int, int]) -> dict[str, object]:
    """What a resized copy of ``image`` depends on: the source's resolved path, byte size and modification
    time (ns), and the training ``size``."""
    stat = Path(image).stat()
    return {"source": str(Path(image).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "size": list(size)}


def cached_resized_image(image: str | os.PathLike[str], size: tuple[int, int], folder: str | os.PathLike[str]) -> Path:
    """:func:`write_resized_image` into ``folder/<stem>.tif``, reused while ``<stem>.tif.source.json`` holds
    the :func:`source_key` of ``image`` now; a changed (or replaced) JPEG or another size converts it again."""
    target = Path(folder) / f"{Path(image).stem}.tif"
    sidecar = target.with_name(f"{target.name}.source.json")
    key = source_key(image, size)
    try:
        cached = json.loads(sidecar.read_text()) if target.is_file() else None
    except (OSError, ValueError):
        cached = None
    if cached == key:
        return target
    write_resized_image(image, size, target)
    write_text_atomic(sidecar, json.dumps(key))
    return target


def clouds_scenes(
    csv_path: str | os.PathLike[str], size: tuple[int, int], out_dir: str | os.PathLike[str]
) -> list[SceneSpec]:
    """Scenes of Kaggle's ``train.csv`` + ``train_images/``: resized images and 4-band 0/1 masks in ``out_dir``.

    Every row and image is checked before anything is written. Masks are decoded on the image's own
    grid (1400 x 2100), area-averaged to ``size`` and kept where at least half of the area is on.
    """
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    masks = read_clouds_csv(csv_path, shape=None)
    folder = csv_path.parent / IMAGES_DIR
    shapes: dict[str, tuple[int, int]] = {}
    for line, image in enumerate(masks, start=2):
        path = folder / image
        if not path.is_file():
            raise InputError(
                f"{csv_path}: rows for image {image!r} (first near line {line}) but {path} does not exist; "
                f"put the JPEGs in {folder} or remove those rows"
            )
        with open_raster(path) as src:
            shapes[image] = (src.height, src.width)
        for label, rle in masks[image].items():
            try:
                rle_runs(rle, shapes[image])
            except InputError as exc:
                raise InputError(f"{csv_path}: {image}_{label}: {exc}") from exc
    scenes = []
    for image, labels in masks.items():
        stem = Path(image).stem
        image_out = write_resized_image(folder / image, size, out_dir / f"{stem}.image.tif")
        stack = np.stack([rle_decode(labels.get(label, ""), shapes[image]) for label in LABELS]) * np.uint8(255)
        resized = resize_array(stack, size, "average") >= 128
        mask_out = out_dir / f"{stem}.mask.tif"
        with no_grid_warning():
            write_geotiff(mask_out, resized.astype(np.uint8), None, submission_grid(size), MASK_NODATA)
        scenes.append(SceneSpec(id=stem, images={"image": image_out}, targets={"mask": mask_out}))
    return scenes
