"""``eoseg pseudo-label``: predictions on unlabelled scenes -> soft labels, a prepared chip set, confidence.

For each scene the streaming predictor runs with the configured TTA and ensemble (``predict.*``) and
writes float probabilities; the selection rule (``selftrain.pseudo``) turns them into a soft-label raster
on the scene's grid; the scenes are then cut into chips exactly like ``eoseg prepare`` does (soft raster
targets), and chips are kept by the rule. Layout of ``--out``::

    predictions/<scene>.prob.tif ...   the predictor's outputs (kept), <scene>.key: what they were predicted from
    labels/<scene>.soft.tif            soft labels (float32 in [0, 1], NaN = no label)
    scenes.csv                         id, image columns, target column (for eoseg prepare)
    chips/                             prepared chip dataset of the kept chips (manifest, stats, chips)
    confidence.csv                     one row per chip: labelled share, mean confidence, max p, kept
    summary.json                       rule, per-scene and overall shares

Models trained on Kaggle clouds JPEGs (``data.format.name=clouds``) get each JPEG area-averaged to the
training size first, as ``eoseg predict --format clouds`` does (kept in ``inputs/``, the chips' source,
converted again when the JPEG's size or modification time or the training size changes).
Each prediction is recorded with its key (``predictions/<scene>.key``: the models' weights, band statistics and
configs, the ``predict`` and ``post`` settings, each image's path, size and modification time). Re-running
skips scenes whose soft labels exist for the same key and pixel rule (resume); a run with another rule but the
same key relabels the kept predictions without predicting again. A run with another pixel rule or key over
a finished set moves that set (labels, chips, lists, summary) to ``.previous-set/`` first and puts it back if
the run fails, e.g. when the new rule keeps no chip: training never reads a half-rewritten set.
Rules (seed-solutions.md §1.6, §5.5): ``soft`` keeps probabilities; ``hard`` is Open Cities'
``convert_soft_to_hard`` (``p > high`` -> 1, ``p < low`` -> 0, between ignored); ``image`` is the clouds
recipe's selection: a chip is kept only if every channel is confidently empty (max p < ``empty_below``) or
confidently present (max p > ``present_above``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from eoseg.config.activation import activation_of, main_head
from eoseg.config.loader import config_to_dict, validate_config
from eoseg.config.schema import CloudsFormat, ExperimentConfig, PostSpec, PredictSpec, PseudoLabelSpec
from eoseg.data.prepare import finish, plan_dataset, prepare_scene, read_part, signature
from eoseg.errors import ConfigError, InputError
from eoseg.formats.clouds import cached_resized_image
from eoseg.geo.atomic import write_text_atomic
from eoseg.geo.cog import DEFAULT_COMPRESS, GDAL_ENV, RasterSpec, TiledRasterWriter
from eoseg.inference.distributed import fingerprint
from eoseg.inference.predictor import check_bundles, ensure_writable, predict_scene, scene_name
from eoseg.inference.reader import check_scene
from eoseg.models.bundle import ModelBundle
from eoseg.progress import make_progress

BLOCK_ROWS = 512
SOFT_SUFFIX = ".soft.tif"
PUBLISHED = ("labels", "chips", "scenes.csv", "confidence.csv", "summary.json")  # what depends on the rule
PREVIOUS = ".previous-set"


@dataclass
class SceneConfidence:
    """Pixel counts of one scene's predictions: valid, kept by the rule, outside the hard band."""

    name: str
    valid: int = 0
    kept: int = 0
    confident: int = 0
    confidence_sum: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"scene": self.name, "valid_pixels": self.valid, "kept_pixels": self.kept,
                "share_kept": self.kept / self.valid if self.valid else 0.0,
                "share_outside_band": self.confident / self.valid if self.valid else 0.0,
                "mean_confidence": self.confidence_sum / self.valid if self.valid else 0.0}


@dataclass
class PseudoResult:
    """What :func:`pseudo_label` wrote."""

    out: Path
    root: Path
    labels: dict[str, Path]
    scenes_csv: Path
    confidence: Path
    summary: Path
    chips: int
    kept: int
    scenes: list[dict[str, Any]] = field(default_factory=list)


def target_name(config: ExperimentConfig) -> str:
    """The target the main dense head learns: the pseudo-labels' target name."""
    main = main_head(dict(config.model.heads))
    if main is None or config.task.kind in ("regression", "change"):
        raise ConfigError(f"pseudo-label: task {config.task.kind} has no segmentation head to pseudo-label; "
                          "use a binary, multiclass or multilabel model")
    return config.model.heads[main].target or main


def label_bands(config: ExperimentConfig) -> list[int]:
    """Probability bands (1-based) that become soft labels: the foreground of a binary softmax head, else all."""
    main = main_head(dict(config.model.heads))
    head = config.model.heads[main]
    if config.task.kind == "binary" and activation_of(head, config.task) == "softmax" and head.channels == 2:
        return [2]
    return list(range(1, head.channels + 1))


def apply_rule(probs: np.ndarray, spec: PseudoLabelSpec) -> np.ndarray:
    """Soft labels from probabilities ``(C, H, W)`` (NaN = nodata) by the pixel rule (``hard``: 0/1/NaN)."""
    if spec.rule != "hard":
        return probs
    out = np.where(probs > spec.high, 1.0, np.where(probs < spec.low, 0.0, np.nan)).astype(np.float32)
    out[np.isnan(probs)] = np.nan
    return out


def write_soft_labels(
    prob: Path, target: Path, bands: list[int], spec: PseudoLabelSpec, compress: str = DEFAULT_COMPRESS
) -> SceneConfidence:
    """Stream a float probability raster into a soft-label COG by the rule; count what is kept. ``compress``:
    the COG's compression (``predict.compress``, as the predictions themselves)."""
    stats = SceneConfidence(target.name.removesuffix(SOFT_SUFFIX))
    with rasterio.Env(**GDAL_ENV), rasterio.open(prob) as src:
        if not np.issubdtype(np.dtype(src.dtypes[0]), np.floating):
            raise InputError(f"{prob}: pseudo-labels need float probabilities; set predict.prob_dtype=float16")
        raster = RasterSpec(src.width, src.height, len(bands), "float32", src.crs, src.transform,
                            nodata=float("nan"), resampling="average")
        with TiledRasterWriter(target, raster, compress) as writer:
            for row in range(0, src.height, BLOCK_ROWS):
                window = Window(0, row, src.width, min(BLOCK_ROWS, src.height - row))
                probs = src.read(bands, window=window).astype(np.float32)
                valid = np.isfinite(probs).all(axis=0)
                labels = apply_rule(probs, spec)
                stats.valid += int(valid.sum())
                stats.kept += int((np.isfinite(labels).all(axis=0) & valid).sum())
                outside = ((probs < spec.low) | (probs > spec.high)).all(axis=0) & valid
                stats.confident += int(outside.sum())
                stats.confidence_sum += float(np.abs(2 * probs[:, valid] - 1).mean(axis=0).sum())
                writer.write_rows(row, labels)
            writer.finish()
    return stats


def chip_confidence(path: Path, spec: PseudoLabelSpec) -> dict[str, Any]:
    """Labelled share, mean confidence ``|2p - 1|``, max probability per channel, and the rule's verdict."""
    with rasterio.open(path) as src:
        labels = src.read().astype(np.float32)
    labelled = np.isfinite(labels).all(axis=0)
    share = float(labelled.mean())
    values = labels[:, labelled]
    maxima = values.max(axis=1) if values.size else np.zeros(labels.shape[0], np.float32)
    confident = bool(((maxima < spec.empty_below) | (maxima > spec.present_above)).all()) and share > 0
    kept = confident if spec.rule == "image" else share > 0
    return {"labelled_share": share, "mean_confidence": float(np.abs(2 * values - 1).mean()) if values.size else 0.0,
            "max_p": [round(float(m), 4) for m in maxima], "image_rule": confident, "kept": kept}


def pseudo_config(config: ExperimentConfig, root: Path, scenes: list[dict[str, Any]], target: str) -> ExperimentConfig:
    """The config that prepares the pseudo-labelled chips: the model's data settings, soft raster targets."""
    raw = config_to_dict(config)
    raw["data"].update(root=str(root), scenes=scenes, scenes_file=None, format=None, folds=1, fold=0,
                       sampler=None, targets={target: {"kind": "raster", "soft": True}})
    raw["data"]["chips"]["empty_share"] = None
    return validate_config(raw, "pseudo-label")


def pseudo_label(
    bundles: Sequence[ModelBundle],
    scenes: Sequence[dict[str, Path]],
    out: Path,
    config: ExperimentConfig,
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> PseudoResult:
    """Pseudo-label ``scenes`` with ``bundles`` (an ensemble, with ``config.predict`` TTA) into ``out``.

    Every scene is checked against the models before anything is written. Raises :class:`InputError`
    when the selection keeps no chip (the message gives the share each rule keeps).
    """
    check_bundles(bundles)
    spec = config.selftrain.pseudo
    names = check_unlabelled(scenes, bundles[0], config.predict.allow_dtype, names)
    clouds = isinstance(bundles[0].config.data.format, CloudsFormat)
    target, bands = target_name(config), label_bands(config)
    if spec.rule == "hard" and len(bands) > 1 and config.task.kind == "multiclass":
        raise ConfigError("selftrain.pseudo.rule=hard: the uncertainty band needs binary or multilabel "
                          "probabilities; use rule=soft for multiclass models")
    out = Path(out)
    ensure_writable(out)
    if clouds:  # as predict --format clouds: each JPEG area-averaged to the training size, kept for the chips
        size = bundles[0].config.data.format.size
        scenes = [{k: cached_resized_image(Path(v), size, out / "inputs") for k, v in s.items()} for s in scenes]
    restore_previous_set(out)  # a run killed while it replaced a set: back to the last finished one
    summaries_path = out / "labels" / "scenes.json"
    earlier = json.loads(summaries_path.read_text()) if summaries_path.is_file() else {}
    pixels = f"hard {spec.low:g} {spec.high:g}" if spec.rule == "hard" else "soft"  # the pixel rule applied
    keys = prediction_keys(bundles, scenes, config)
    replaces = (out / "summary.json").is_file() and any(
        earlier.get(n, {}).get("pixels") != pixels or earlier.get(n, {}).get("prediction") != keys[i]
        for i, n in enumerate(names))
    with replacing_set(out, replaces):
        return _pseudo_label(bundles, scenes, out, config, names, progress, {} if replaces else earlier, pixels,
                             target, bands, keys)


def prediction_keys(
    bundles: Sequence[ModelBundle], scenes: Sequence[dict[str, Path]], config: ExperimentConfig
) -> list[str]:
    """One key per scene for what its predicted probabilities depend on: the models, ``predict`` and ``post``
    (:func:`~eoseg.inference.distributed.fingerprint`, as ``predict --ray`` resumes), and each image file's
    path, size and modification time."""
    models = fingerprint(bundles, config.predict, config.post)
    keys = []
    for images in scenes:
        key = hashlib.sha256(models.encode())
        for image, path in sorted(images.items()):
            stat = Path(path).stat()
            key.update(f"{image}={Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        keys.append(key.hexdigest())
    return keys


def _pseudo_label(
    bundles: Sequence[ModelBundle],
    scenes: Sequence[dict[str, Path]],
    out: Path,
    config: ExperimentConfig,
    names: Sequence[str],
    progress: bool,
    earlier: dict[str, Any],
    pixels: str,
    target: str,
    bands: list[int],
    keys: list[str],
) -> PseudoResult:
    """:func:`pseudo_label` after its checks: ``earlier`` resume records, ``pixels`` the pixel rule applied,
    ``keys`` the scenes' prediction keys (:func:`prediction_keys`)."""
    spec = config.selftrain.pseudo
    predict = config.predict.model_copy(update={"prob_dtype": "float16"})
    labels: dict[str, Path] = {}
    confidence: list[SceneConfidence] = []
    summaries_path = out / "labels" / "scenes.json"
    for images, name, key in zip(scenes, names, keys, strict=True):
        path = out / "labels" / f"{name}{SOFT_SUFFIX}"
        record = earlier.get(name, {})
        if path.is_file() and record.get("pixels") == pixels and record.get("prediction") == key:  # resume
            stats = SceneConfidence(name, **{k: earlier[name][k] for k in ("valid", "kept", "confident",
                                                                            "confidence_sum")})
        else:
            stats = write_soft_labels(predicted(bundles, images, out / "predictions", predict, config.post, name,
                                                key, progress), path, bands, spec, predict.compress)
            # the chips cut from the earlier labels (same path, so the same prepare signature) are stale
            (out / "chips" / ".parts" / f"{name}.json").unlink(missing_ok=True)
            earlier[name] = {"valid": stats.valid, "kept": stats.kept, "confident": stats.confident,
                             "confidence_sum": stats.confidence_sum, "pixels": pixels, "prediction": key}
            write_text_atomic(summaries_path, json.dumps(earlier, indent=1))
        labels[name] = path
        confidence.append(stats)
    rows = [{"id": n, "images": {k: str(Path(v).resolve()) for k, v in s.items()},
             "targets": {target: str(labels[n].resolve())}} for s, n in zip(scenes, names, strict=True)]
    scenes_csv = write_scenes_csv(out / "scenes.csv", rows, target)
    root = out / "chips"
    prepared = pseudo_config(config, root, rows, target)
    chips, kept, table = prepare_selected(prepared, root, target, spec, progress)
    scene_rows = [c.as_dict() for c in confidence]
    share = kept / chips if chips else 0.0
    if kept == 0:
        raise InputError(empty_message(spec, chips, confidence, table, out))
    confidence_csv = write_text_atomic(out / "confidence.csv", _csv(table))
    summary = {"rule": spec.model_dump(), "target": target, "chips": chips, "kept_chips": kept,
               "share_kept_chips": share, "scenes": scene_rows}
    summary_path = write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return PseudoResult(out, root, labels, scenes_csv, confidence_csv, summary_path, chips, kept, scene_rows)


def predicted(
    bundles: Sequence[ModelBundle],
    images: dict[str, Path],
    folder: Path,
    predict: PredictSpec,
    post: PostSpec,
    name: str,
    key: str,
    progress: bool,
) -> Path:
    """The probability raster of scene ``name`` in ``folder``: the kept one when its recorded key is ``key``
    (only the selection rule changed), else a new prediction, its key written once it is complete."""
    prob, record = folder / f"{name}.prob.tif", folder / f"{name}.key"
    if prob.is_file() and record.is_file() and record.read_text().strip() == key:
        return prob
    record.unlink(missing_ok=True)  # a prediction interrupted from here on has no key and is redone
    result = predict_scene(bundles, images, folder, predict, post, name, progress, georeferenced(bundles[0]))
    write_text_atomic(record, key + "\n")
    return result.prob


@contextmanager
def replacing_set(out: Path, replaces: bool) -> Iterator[None]:
    """When ``replaces``, move the finished set of ``out`` (:data:`PUBLISHED`) to ``.previous-set/`` for the
    run, delete it when the run succeeds and put it back when the run fails (any exception)."""
    if not replaces:
        yield
        return
    previous = out / PREVIOUS
    previous.mkdir()
    for name in PUBLISHED:
        if (out / name).exists():
            (out / name).rename(previous / name)
    try:
        yield
    except BaseException:
        restore_previous_set(out)
        raise
    shutil.rmtree(previous)


def restore_previous_set(out: Path) -> None:
    """Put a set moved aside by :func:`replacing_set` back in place of what a failed run left."""
    previous = out / PREVIOUS
    if not previous.is_dir():
        return
    for name in PUBLISHED:
        if (previous / name).exists():
            partial = out / name
            if partial.is_dir():
                shutil.rmtree(partial)
            else:
                partial.unlink(missing_ok=True)
            (previous / name).rename(partial)
    previous.rmdir()


def check_unlabelled(
    scenes: Sequence[dict[str, Path]], bundle: ModelBundle, allow_dtype: bool, names: Sequence[str] | None = None
) -> list[str]:
    """Check unlabelled scenes without running a model: unique names, and every scene readable with the
    images, band counts and dtypes of ``bundle`` (the reader's :func:`check_scene`); return the names.

    Raises :class:`InputError` naming the first file that does not fit.
    """
    names = list(names) if names is not None else [scene_name(s) for s in scenes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"scenes {duplicates}: two unlabelled scenes have the same name; rename the files")
    for images in scenes:
        check_scene({k: Path(v) for k, v in images.items()}, bundle, allow_dtype, georeferenced(bundle))
    return names


def georeferenced(bundle: ModelBundle) -> bool:
    """Whether the scenes of ``bundle``'s dataset have a CRS: Kaggle's clouds JPEGs have none by design (no
    :class:`~eoseg.inference.reader.NoCrsWarning` for them)."""
    return not isinstance(bundle.config.data.format, CloudsFormat)


def prepare_selected(
    config: ExperimentConfig, root: Path, target: str, spec: PseudoLabelSpec, progress: bool
) -> tuple[int, int, list[dict[str, Any]]]:
    """Cut the pseudo-labelled scenes into chips (as ``prepare``, resumable) and list only the kept chips."""
    plan = plan_dataset(config.data)
    parts, resumed = {}, []
    with rasterio.Env(GDAL_CACHEMAX=64 * 2**20), make_progress(progress) as bars:
        for scene in plan.scenes:
            sig = signature(config.data, scene)
            part = read_part(root / ".parts" / f"{scene.id}.json")
            if part is not None and part["signature"] == sig:
                resumed.append(scene.id)
            else:
                part = prepare_scene(plan, scene, root, sig, bars)
            parts[scene.id] = part
    table, chips, kept = [], 0, 0
    for part in parts.values():
        keep = []
        for row in part["rows"]:
            verdict = chip_confidence(root / row[f"target:{target}"], spec)
            table.append({"chip_id": row["chip_id"], "scene": row["scene"], **verdict})
            chips += 1
            if verdict["kept"]:
                keep.append(row)
        kept += len(keep)
        part["rows"] = keep
    if kept:
        finish(config, plan, root, parts, resumed)
    return chips, kept, table


def empty_message(
    spec: PseudoLabelSpec, chips: int, scenes: list[SceneConfidence], table: list[dict[str, Any]], out: Path
) -> str:
    valid = sum(s.valid for s in scenes)
    outside = sum(s.confident for s in scenes) / valid if valid else 0.0
    image = sum(r["image_rule"] for r in table) / chips if chips and spec.rule != "hard" else None
    image_text = f"{image:.0%} of chips" if image is not None else "n/a under rule=hard"
    return (f"{out}: pseudo-labels: selftrain.pseudo.rule={spec.rule} keeps 0 of {chips} chips; share kept per "
            f"rule: soft {1.0 if valid else 0.0:.0%} of valid pixels, hard (band {spec.low:g}..{spec.high:g}) "
            f"{outside:.0%} of valid pixels, image (empty < {spec.empty_below:g}, present > "
            f"{spec.present_above:g}) {image_text}; loosen the rule (e.g. selftrain.pseudo.rule=soft) or add scenes")


def write_scenes_csv(path: Path, rows: list[dict[str, Any]], target: str) -> Path:
    """``id, <image names>, <target>``: the scene list ``eoseg prepare`` reads."""
    images = list(rows[0]["images"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", *images, target])
    for row in rows:
        writer.writerow([row["id"], *(row["images"][n] for n in images), row["targets"][target]])
    return write_text_atomic(path, buffer.getvalue())


def _csv(table: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
    writer.writeheader()
    for row in table:
        writer.writerow({**row, "max_p": " ".join(str(v) for v in row["max_p"])})
    return buffer.getvalue()
