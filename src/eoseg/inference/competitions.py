"""Predictions written in a competition's submission format (``eoseg predict --format NAME``).

``clouds``: each JPEG is resized to the checkpoint's training size (``data.format.size``), predicted
(``<stem>.prob.tif``, ``<stem>.mask.tif``, ``<stem>.heads.json``), and ``submission.csv`` gets its four
RLE rows at 350 x 525 after the whole ``post`` section (:mod:`eoseg.post.clouds`).

``geopose``: each ``<id>_RGB`` tile is predicted (``<id>.height.tif``, ``<id>.magnitude.tif``,
``<id>.heads.json``), then ``<id>_AGL.tif`` and ``<id>_VFLOW.json`` are written (:mod:`eoseg.post.geopose`).
A model with the ground-sample-distance input gets each tile's ``gsd`` plane from the competition's
``metadata.csv`` beside ``test/`` (a temporary raster).

``xview2``: each pre/post pair is predicted (``<id>.prob.tif``, ``<id>.mask.tif``, ``<id>.damage.tif``), its
buildings get one damage class each (:mod:`eoseg.post.xview2`, written as ``<id>.buildings.gpkg``: a PNG's
pixel coordinates without a CRS, which GeoJSON cannot say, see :func:`~eoseg.geo.products.write_vector`) and
the two submission PNGs ``test_localization_<id>_prediction.png`` / ``test_damage_<id>_prediction.png``
are written; ``<id>`` comes from the file names (``test_post_00012.png`` -> ``00012``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar, get_args

from eoseg.config.schema import CloudsFormat, GeoposeFormat, PostSpec, PredictSpec
from eoseg.errors import ConfigError, InputError
from eoseg.formats.clouds import write_clouds_csv, write_resized_image
from eoseg.formats.geopose import GSD_IMAGE, find_metadata, read_metadata, tile_gsd, tile_id, write_gsd_plane
from eoseg.formats.xbd import write_xview2_png, xview2_image_id, xview2_png_name
from eoseg.geo.products import write_vector
from eoseg.inference.predictor import SceneOutputs, ensure_writable, predict_scene
from eoseg.models.bundle import ModelBundle
from eoseg.post.clouds import submission_rows
from eoseg.post.geopose import write_tile_submission
from eoseg.post.xview2 import xview2_masks

FORMATS = ("clouds", "geopose", "xview2")
SUBMISSION_CSV = "submission.csv"


FormatT = TypeVar("FormatT", CloudsFormat, GeoposeFormat)


def given_images(fmt: str, image_names: Sequence[str]) -> list[str]:
    """The model's images that a user gives for ``--format fmt`` (geopose derives the ``gsd`` plane itself)."""
    return [n for n in image_names if not (fmt == "geopose" and n == GSD_IMAGE)]


def check_submission_inputs(
    bundles: Sequence[ModelBundle],
    expected: type[FormatT],
    images: Sequence[Path],
    ids: Sequence[str],
    out_dir: Path,
    noun: str,
    where: str,
) -> FormatT:
    """The checks every ``--format`` submission makes before any work; returns the checkpoint's format.

    ConfigError unless the model was trained with ``data.format`` of type ``expected``; InputError for an
    id (``noun``: a submission row's key) given twice, an image file that does not exist (``where`` says
    which files to give) or an output folder that cannot be written.
    """
    fmt = bundles[0].config.data.format
    (name,) = get_args(expected.model_fields["name"].annotation)
    if not isinstance(fmt, expected):
        raise ConfigError(
            f"{bundles[0].source or 'checkpoint'}: --format {name} needs a model trained with "
            f"data.format.name={name} (the {name} preset); predict its images without --format"
        )
    duplicates = sorted({i for i in ids if list(ids).count(i) > 1})
    if duplicates:
        raise InputError(
            f"--format {name}: {noun}s {duplicates} are given twice; a submission lists each {noun} once"
        )
    for path in images:
        if not Path(path).is_file():
            raise InputError(f"{path}: image not found; give {where}")
    ensure_writable(out_dir)
    return fmt


def predict_clouds(
    bundles: Sequence[ModelBundle], images: Sequence[Path], out_dir: Path, spec: PredictSpec, post: PostSpec,
    progress: bool = True,
) -> tuple[list[SceneOutputs], Path]:
    """Predict Kaggle clouds JPEGs; write the rasters per image and ``out_dir/submission.csv``."""
    fmt = check_submission_inputs(
        bundles, CloudsFormat, images, [Path(p).name for p in images], out_dir, "image", "the JPEGs of test_images/"
    )
    results, rows = [], {}
    with tempfile.TemporaryDirectory(prefix=".eoseg-inputs-", dir=out_dir) as tmp:
        for path in images:
            stem = Path(path).stem
            resized = write_resized_image(path, fmt.size, Path(tmp) / f"{stem}.tif")
            result = predict_scene(bundles, {bundles[0].image_names[0]: resized}, out_dir, spec, post, stem,
                                   progress, georeferenced=False)
            results.append(result)
            rows[Path(path).name] = submission_rows(result.prob, result.heads, post)
    return results, write_clouds_csv(out_dir / SUBMISSION_CSV, rows)


def predict_geopose(
    bundles: Sequence[ModelBundle], images: Sequence[Path], out_dir: Path, spec: PredictSpec, post: PostSpec,
    progress: bool = True,
) -> tuple[list[SceneOutputs], list[Path]]:
    """Predict Overhead Geopose RGB tiles; write the rasters and ``<id>_AGL.tif`` + ``<id>_VFLOW.json`` each."""
    tiles = [tile_id(p) for p in images]
    fmt = check_submission_inputs(
        bundles, GeoposeFormat, images, tiles, out_dir, "tile", "the <id>_RGB.j2k tiles of test/"
    )
    gsd = {}  # the model's gsd input, when it has one: each tile's value from the competition's metadata.csv
    if GSD_IMAGE in bundles[0].image_names:
        for path, tile in zip(images, tiles, strict=True):
            metadata = find_metadata(path)
            gsd[tile] = tile_gsd(read_metadata(metadata), tile, metadata)
    results, written = [], []
    with tempfile.TemporaryDirectory(prefix=".eoseg-inputs-", dir=out_dir) as tmp:
        for path, tile in zip(images, tiles, strict=True):
            inputs = {bundles[0].image_names[0]: Path(path)}
            if tile in gsd:
                inputs[GSD_IMAGE] = write_gsd_plane(Path(tmp) / f"{tile}.{GSD_IMAGE}.tif", gsd[tile], path)
            result = predict_scene(bundles, inputs, out_dir, spec, post, tile, progress, georeferenced=False)
            results.append(result)
            written += write_tile_submission(result.values, result.heads, out_dir, tile, fmt.unit)
    return results, written


def predict_xview2(
    bundles: Sequence[ModelBundle],
    scenes: Sequence[dict[str, Path]],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    progress: bool = True,
) -> tuple[list[SceneOutputs], list[Path]]:
    """Predict xView2 pre/post pairs; write the rasters, the voted buildings and the submission PNGs."""
    config = bundles[0].config
    damage_head = next((n for n, h in config.model.heads.items()
                        if h.kind == "dense" and (h.target or n) == config.task.damage_target), None)
    if config.task.kind != "change" or damage_head is None:
        raise ConfigError(
            f"{bundles[0].source or 'checkpoint'}: --format xview2 needs a damage model (task.kind=change, "
            "the damage preset); predict its scenes without --format"
        )
    ids = [xview2_image_id(Path(s.get("post", next(iter(s.values())))).stem) for s in scenes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"--format xview2: image ids {duplicates} are given twice; a submission has each once")
    ensure_writable(out_dir)
    results, written = [], []
    for images, image_id in zip(scenes, ids, strict=True):
        result = predict_scene(bundles, images, out_dir, spec, post, image_id, progress, georeferenced=False)
        localisation, damage, buildings = xview2_masks(result.mask, result.values[damage_head], post.min_area)
        write_vector(buildings, out_dir / f"{image_id}.buildings.gpkg")
        written.append(write_xview2_png(out_dir / xview2_png_name("localization", image_id), localisation))
        written.append(write_xview2_png(out_dir / xview2_png_name("damage", image_id), damage))
        results.append(result)
    return results, written
