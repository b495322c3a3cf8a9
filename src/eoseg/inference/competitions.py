"""Predictions written in a competition's submission format (``eoseg predict --format NAME``).

``clouds``: each JPEG is resized to the checkpoint's training size (``data.format.size``), predicted
(``<stem>.prob.tif``, ``<stem>.mask.tif``, ``<stem>.heads.json``), and ``submission.csv`` gets its four
RLE rows at 350 x 525 after the whole ``post`` section (:mod:`eoseg.post.clouds`).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from eoseg.config.schema import CloudsFormat, PostSpec, PredictSpec
from eoseg.errors import ConfigError, InputError
from eoseg.formats.clouds import write_clouds_csv, write_resized_image
from eoseg.inference.predictor import SceneOutputs, ensure_writable, predict_scene
from eoseg.inference.reader import NoCrsWarning
from eoseg.models.bundle import ModelBundle
from eoseg.post.clouds import submission_rows

FORMATS = ("clouds",)
SUBMISSION_CSV = "submission.csv"


def predict_clouds(
    bundles: Sequence[ModelBundle],
    images: Sequence[Path],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    progress: bool = True,
) -> tuple[list[SceneOutputs], Path]:
    """Predict Kaggle clouds JPEGs; write the rasters per image and ``out_dir/submission.csv``."""
    fmt = bundles[0].config.data.format
    if not isinstance(fmt, CloudsFormat):
        raise ConfigError(
            f"{bundles[0].source or 'checkpoint'}: --format clouds needs a model trained with data.format.name=clouds "
            "(the clouds preset); predict its images without --format"
        )
    names = [Path(p).name for p in images]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"--format clouds: images {duplicates} are given twice; a submission lists each image once")
    for path in images:
        if not Path(path).is_file():
            raise InputError(f"{path}: image not found; give the JPEGs of test_images/")
    ensure_writable(out_dir)
    results, rows = [], {}
    with tempfile.TemporaryDirectory(prefix=".eoseg-inputs-", dir=out_dir) as tmp:
        for path in images:
            stem = Path(path).stem
            resized = write_resized_image(path, fmt.size, Path(tmp) / f"{stem}.tif")
            with warnings.catch_warnings():  # Kaggle's JPEGs have no CRS by design
                warnings.simplefilter("ignore", NoCrsWarning)
                result = predict_scene(
                    bundles, {bundles[0].image_names[0]: resized}, out_dir, spec, post, stem, progress
                )
            results.append(result)
            rows[Path(path).name] = submission_rows(result.prob, result.heads, post)
    return results, write_clouds_csv(out_dir / SUBMISSION_CSV, rows)
