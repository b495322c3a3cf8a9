"""``eoseg prepare``: scenes and labels -> georeferenced chips, manifest, band statistics, folds.

Layout (docs/design.md, "Prepared dataset")::

    root/manifest.parquet  root/stats.json  root/config.yaml
    root/chips/<scene>/<chip_id>.<name>.tif
    root/.parts/<scene>.json      per-scene rows and statistics (resume)

Each scene is processed on its own: its chips are written atomically, then its part file, last. A re-run
skips scenes whose part exists (and was made with the same data settings); an interrupted run never
lists a chip that is not complete, because only part files feed the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.windows import Window

from eoseg.config.loader import save_config
from eoseg.config.schema import DataSpec, ExperimentConfig, SceneSpec, TargetSpec
from eoseg.data.bandmath import BandMath, resolve_band_names
from eoseg.data.folds import assign_folds
from eoseg.data.scenes import load_scenes
from eoseg.data.stats import DatasetStats, StatsAccumulator, integer_channel, write_stats
from eoseg.errors import ConfigError, InputError
from eoseg.formats.xbd import is_xbd_json, xbd_labels
from eoseg.geo.atomic import atomic_path, check_not_inputs, writable_folder, write_text_atomic
from eoseg.geo.products import IGNORE
from eoseg.geo.raster import (
    RasterInfo,
    Source,
    align_to,
    check_overlap,
    effective_nodata,
    info_of,
    open_raster,
    raster_info,
    read_window,
    valid_mask,
    write_geotiff,
)
from eoseg.geo.rasterize import LabelLayer, rasterize_labels
from eoseg.geo.vector import burn_values, check_class_map, load_labels, repair_polygons
from eoseg.progress import make_progress

STATS_BLOCK = 1024
GDAL_CACHE_BYTES = 64 * 2**20  # block cache (bytes: a small number is read as MB by some GDAL code paths)
WRITE_THREADS = min(2, os.cpu_count() or 1)


@dataclass
class PrepareResult:
    """What :func:`prepare` produced."""

    root: Path
    manifest: Path
    stats: Path
    chips: int
    scenes: int
    resumed: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # scenes without a valid pixel (all nodata / NaN)


class EmptySceneWarning(UserWarning):
    """A scene has no valid pixel (all nodata or NaN): it gives no chips."""


@dataclass
class DatasetPlan:
    """The checked description of a dataset: scenes, image bands and dtypes, band math, class counts."""

    data: DataSpec
    scenes: list[SceneSpec]
    infos: dict[str, dict[str, RasterInfo]]
    bands: dict[str, list[str]]
    bandmath: BandMath
    num_classes: dict[str, int]

    @property
    def image_names(self) -> list[str]:
        return list(self.scenes[0].images)

    def nodata(self, scene: SceneSpec, image: str) -> float:
        """Nodata of an image of a scene: data.nodata override, the file's, else NaN / 0 by dtype (the rule
        that :meth:`DatasetStats.nodata_rule` gives the scene reader, with this run's data.nodata recorded)."""
        return effective_nodata(self.infos[scene.id][image], self.data.nodata.get(image))


def plan_dataset(data: DataSpec) -> DatasetPlan:
    """Load the scene list and check it before anything is written (bands, classes, files)."""
    scenes = load_scenes(data)
    infos = {s.id: {name: raster_info(path) for name, path in s.images.items()} for s in scenes}
    first = scenes[0]
    for scene in scenes:
        for name, info in infos[scene.id].items():
            ref = infos[first.id][name]
            if info.count != ref.count:
                raise InputError(
                    f"{info.path}: image {name!r} of scene {scene.id} has {info.count} bands but scene "
                    f"{first.id} has {ref.count}; all scenes of a dataset need the same bands"
                )
    counts = {name: info.count for name, info in infos[first.id].items()}
    bands = resolve_band_names(data.bands, counts)
    bandmath = BandMath(data.inputs, bands, data.scale)
    num_classes = {}
    for name, spec in data.targets.items():
        num_classes[name] = _num_classes(name, spec, data)
        if spec.kind == "vector" and spec.burn_attribute and spec.class_map:
            # xBD label files are checked by their reader (known subtypes only)
            paths = [Path(s.targets[name]) for s in scenes if name in s.targets and not is_xbd_json(s.targets[name])]
            if paths:
                check_class_map(paths, spec.burn_attribute, spec.class_map, f"data.targets.{name}.class_map")
    return DatasetPlan(data, scenes, infos, bands, bandmath, num_classes)


def _num_classes(name: str, spec: TargetSpec, data: DataSpec) -> int:
    if spec.kind == "raster":
        return 0
    values = list(spec.class_map.values()) if spec.class_map else [spec.burn_value]
    if any(v < 0 or v >= IGNORE for v in values):
        raise ConfigError(f"data.targets.{name}: class values must be in 0..254 ({IGNORE} marks ignore); got {values}")
    return max(len(data.classes), max(values) + 1)


def chip_windows(height: int, width: int, size: int, overlap: int, scale: float) -> Iterator[Window]:
    """Windows (native pixels) of ``size`` chip pixels at ``scale``, covering every pixel of the scene.

    Chips step by ``size - overlap`` chip pixels; the last row and column of chips may extend beyond the
    scene (they are padded with nodata).
    """
    span, stride = size * scale, (size - overlap) * scale
    if not (_integral(span) and _integral(stride)):
        raise ConfigError(
            f"data.chips.scales: scale {scale:g} gives a chip of {span:g} x {span:g} scene pixels with a step of "
            f"{stride:g}; pick scales for which size*scale and (size-overlap)*scale are whole numbers"
        )
    span, stride = round(span), round(stride)
    rows = 1 + math.ceil(max(0, height - span) / stride)
    cols = 1 + math.ceil(max(0, width - span) / stride)
    for i in range(rows):
        for j in range(cols):
            yield Window(j * stride, i * stride, span, span)


def _integral(x: float) -> bool:
    return abs(x - round(x)) < 1e-9


def chip_id(scene: str, scale: float, window: Window) -> str:
    """``<scene>-s<scale>-r<row>-c<col>`` (row/col = the window offset in native pixels)."""
    return f"{scene}-s{scale:g}-r{int(window.row_off)}-c{int(window.col_off)}"


def keep_empty(seed: int, cid: str, share: float) -> bool:
    """Deterministic draw: whether an empty chip is kept, with probability ``share``."""
    digest = hashlib.sha1(f"{seed}:{cid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def image_resampling(scale: float) -> str:
    """Resampling of image chips: none at scale 1, area average when shrinking, bilinear when enlarging."""
    return "nearest" if scale == 1 else ("average" if scale > 1 else "bilinear")


def signature(data: DataSpec, scene: SceneSpec) -> str:
    """Hash of everything that decides a scene's chips (not folds, augmentation or sampling)."""
    relevant = data.model_dump(
        mode="json", include={"bands", "inputs", "nodata", "targets", "classes", "chips", "seed"}
    )
    relevant["scene"] = scene.model_dump(mode="json", include={"id", "images", "targets"})
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _grid(info: RasterInfo) -> str:
    """A raster's grid in a message: size, pixel size, CRS and origin (what must match for soft labels)."""
    t = info.transform
    return f"{info.width}x{info.height} px of {t.a:.6g} x {-t.e:.6g}, {info.crs}, origin {t.c:.12g}, {t.f:.12g}"


class ScenePreparer:
    """Chips, rows and statistics of one scene.

    All sources stay open for the scene; images and label rasters on another grid than the first image
    are reprojected onto it on the fly (images bilinear, label rasters with their target's resampling).
    """

    def __init__(self, plan: DatasetPlan, scene: SceneSpec, root: Path, stack: contextlib.ExitStack) -> None:
        self.plan, self.scene, self.root, self.data = plan, scene, root, plan.data
        self.invalid_windows = 0  # windows without a valid pixel (an all-nodata scene has only those)
        self.writer = stack.enter_context(ChipWriter())
        self._scale_checked = False  # the declared-scale warning is given once per scene
        integer = []
        for c in range(plan.bandmath.channels):
            plain = plan.bandmath.plain_band(c)
            integer.append(plain is not None and integer_channel(plan.infos[scene.id][plain[0]].dtype))
        self.stats = StatsAccumulator(plan.bandmath.inputs, integer)
        names = plan.image_names
        sources = {name: stack.enter_context(open_raster(scene.images[name])) for name in names}
        self.reference = info_of(sources[names[0]], Path(scene.images[names[0]]))
        self.nodata = {name: plan.nodata(scene, name) for name in names}
        self.images: dict[str, Source] = {}
        for name, src in sources.items():
            what = f"image {name!r} of scene {scene.id}"
            check_overlap(self.reference, info_of(src, Path(scene.images[name])), what)
            self.images[name] = stack.enter_context(
                _maybe(align_to(src, self.reference, "bilinear", self.nodata[name]), src)
            )
        self.layers: dict[str, LabelLayer] = {}
        self.rasters: dict[str, tuple[Source, float, float | None]] = {}
        for name, path in scene.targets.items():
            spec = self.data.targets[name]
            if spec.kind == "vector":
                self.layers[name] = self._label_layer(name, Path(path), spec)
            else:
                self.rasters[name] = self._label_raster(name, Path(path), spec, stack)
        self.spacing = {name: self.contact_spacing(name, self.data.targets[name]) for name in self.layers}

    def contact_spacing(self, name: str, spec: TargetSpec) -> float:
        """``data.targets.<name>.contact.spacing`` in chip pixels (unit px) or in the scene CRS's units (m)."""
        contact = spec.contact
        if contact.unit == "px" or "contact" not in spec.extra_channels:
            return contact.spacing
        crs = self.reference.crs
        if crs is None or not crs.is_projected:
            raise InputError(
                f"{self.reference.path}: data.targets.{name}.contact.unit=m but scene {self.scene.id} has "
                f"{'no CRS' if crs is None else 'a geographic CRS'} (no metres); use contact.unit=px"
            )
        return contact.spacing / crs.linear_units_factor[1]

    def _label_layer(self, name: str, path: Path, spec: TargetSpec) -> LabelLayer:
        if is_xbd_json(path):  # pixel coordinates on a PNG's pixel grid, else WGS84 onto the scene CRS
            frame = repair_polygons(xbd_labels(path, self.reference.crs))
        elif self.reference.crs is None:
            raise InputError(
                f"{self.reference.path}: scene {self.scene.id} has no CRS, so labels cannot be placed on it; assign "
                f"the scene's CRS first: rio edit-info --crs EPSG:CODE {self.reference.path}"
            )
        else:
            frame = load_labels(
                path, self.reference.crs, self.reference.bounds, spec.label_crs, f"data.targets.{name}.label_crs"
            )
        frame, values = burn_values(frame, spec.burn_value, spec.burn_attribute, spec.class_map, path)
        if len(values) and (values.min() < 0 or values.max() >= IGNORE):
            raise InputError(f"{path}: burn values must be in 0..254 ({IGNORE} marks ignore); map them with class_map")
        return LabelLayer(np.asarray(frame.geometry.values, dtype=object), values)

    def _label_raster(
        self, name: str, path: Path, spec: TargetSpec, stack: contextlib.ExitStack
    ) -> tuple[Source, float, float | None]:
        """The label raster on the scene grid, its ignore value and its own nodata."""
        src = stack.enter_context(open_raster(path))
        info = info_of(src, path)
        ignore = spec.ignore_value if spec.ignore_value is not None else info.nodata
        if ignore is None:
            raise ConfigError(
                f"{path}: target {name!r} has no nodata; set data.targets.{name}.ignore_value to the 'no label' value"
            )
        if np.issubdtype(np.dtype(info.dtype), np.integer):
            limits = np.iinfo(info.dtype)
            if not (np.isfinite(ignore) and ignore == int(ignore) and limits.min <= ignore <= limits.max):
                raise ConfigError(
                    f"data.targets.{name}.ignore_value: {ignore:g} does not fit the {info.dtype} raster {path}"
                )
            ignore = int(ignore)
        if spec.soft and not self.reference.same_grid(info):
            raise InputError(
                f"{path}: soft labels of target {name!r} are on another grid ({_grid(info)}) than image "
                f"{self.reference.path.name} of scene {self.scene.id} ({_grid(self.reference)}); soft labels "
                f"must be written on their image's grid (as eoseg pseudo-label does); check that the scene list "
                f"pairs the right files"
            )
        check_overlap(self.reference, info, f"target {name!r} of scene {self.scene.id}")
        aligned = stack.enter_context(_maybe(align_to(src, self.reference, spec.resampling, ignore), src))
        return aligned, ignore, info.nodata

    def windows(self) -> list[tuple[float, Window]]:
        chips = self.data.chips
        return [
            (scale, w)
            for scale in chips.scales
            for w in chip_windows(self.reference.height, self.reference.width, chips.size, chips.overlap, scale)
        ]

    def read_images(
        self, window: Window, shape: tuple[int, int], resampling: str
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Image arrays of a window and the valid mask over all images."""
        arrays = {
            name: read_window(src, window, shape, resampling, self.nodata[name]) for name, src in self.images.items()
        }
        valid = np.ones(shape, dtype=bool)
        for name, array in arrays.items():
            valid &= valid_mask(array, self.nodata[name])
        return arrays, valid

    def add_stats(self, arrays: dict[str, np.ndarray], valid: np.ndarray) -> None:
        """Add the valid pixels of scale-1 image arrays to the scene's input-channel statistics."""
        bandmath = self.plan.bandmath
        files = {name: str(self.scene.images[name]) for name in arrays}
        bandmath.check(arrays, valid, files, warn=not self._scale_checked)
        self._scale_checked = True
        every = bool(valid.all())
        for c in range(bandmath.channels):
            plain = bandmath.plain_band(c)
            values = arrays[plain[0]][plain[1]] if plain else bandmath.evaluate(arrays, c)
            self.stats.update(c, values.ravel() if every else values[valid])

    def stats_pass(self) -> None:
        """Statistics over the whole scene in non-overlapping blocks (when no chips are cut at scale 1)."""
        ref = self.reference
        for row in range(0, ref.height, STATS_BLOCK):
            for col in range(0, ref.width, STATS_BLOCK):
                window = Window(col, row, min(STATS_BLOCK, ref.width - col), min(STATS_BLOCK, ref.height - row))
                arrays, valid = self.read_images(window, (int(window.height), int(window.width)), "nearest")
                if valid.any():
                    self.add_stats(arrays, valid)

    def owned(self, window: Window) -> tuple[slice, slice]:
        """The part of a scale-1 chip that no later chip repeats: its step, or up to the scene edge."""
        chips = self.data.chips
        step = chips.size - chips.overlap

        def part(offset: float, extent: int) -> slice:
            last = offset + chips.size >= extent
            return slice(0, int(extent - offset) if last else step)

        return part(window.row_off, self.reference.height), part(window.col_off, self.reference.width)

    def chip(self, scale: float, window: Window) -> dict[str, Any] | None:
        """Write the chips of one window; return its manifest row, or None when it is skipped."""
        size = self.data.chips.size
        shape = (size, size)
        arrays, valid = self.read_images(window, shape, image_resampling(scale))
        n_valid = int(np.count_nonzero(valid))
        if n_valid == 0:
            self.invalid_windows += 1
            return None
        every = n_valid == size * size
        if scale == 1:  # statistics over every scene pixel once, from the chips that hold it first
            rows, cols = self.owned(window)
            self.add_stats({name: a[:, rows, cols] for name, a in arrays.items()}, valid[rows, cols])
        transform = self.reference.transform @ Affine.translation(window.col_off, window.row_off) @ Affine.scale(scale)
        cid = chip_id(self.scene.id, scale, window)
        targets, fractions, has_labels = {}, {}, False
        for name, layer in self.layers.items():
            spec = self.data.targets[name]
            target = rasterize_labels(
                layer, transform, shape, spec.all_touched, spec.extra_channels, spec.boundary.inner,
                spec.boundary.outer, self.spacing[name], spec.contact.unit,
            )
            if every:
                counts = np.bincount(target[0].ravel(), minlength=IGNORE + 1)
            else:
                target[:, ~valid] = IGNORE
                counts = np.bincount(target[0][valid], minlength=IGNORE + 1)
            fractions.update({f"frac:{name}:{k}": counts[k] / n_valid for k in range(self.plan.num_classes[name])})
            has_labels |= bool(counts[1:IGNORE].any())
            targets[name] = (target, IGNORE)
        for name, (src, ignore, src_nodata) in self.rasters.items():
            target = read_window(src, window, shape, self.data.targets[name].resampling, ignore)
            labelled = valid_mask(target, ignore) & valid
            if src_nodata is not None:
                labelled &= valid_mask(target, src_nodata)
            target[:, ~labelled] = ignore
            if self.data.targets[name].soft:
                check_probabilities(target[:, labelled], name, self.scene)
            fractions[f"frac:{name}"] = float(labelled.sum()) / (size * size)
            has_labels |= bool(np.any(target[:, labelled] != 0))
            targets[name] = (target, ignore)
        share = self.data.chips.empty_share
        if share is not None and not has_labels and not keep_empty(self.data.seed, cid, share):
            return None
        folder = Path("chips") / self.scene.id
        row: dict[str, Any] = {
            "chip_id": cid,
            "scene": self.scene.id,
            "scale": float(scale),
            "res_x": self.reference.res[0] * scale,
            "res_y": self.reference.res[1] * scale,
            "row_off": int(window.row_off),
            "col_off": int(window.col_off),
            "height": int(window.height),
            "width": int(window.width),
            "size": size,
            "crs": self.reference.crs.to_string() if self.reference.crs else None,
            "valid_fraction": n_valid / (size * size),
        }
        compress = self.data.chips.compress
        for name, array in arrays.items():
            rel = folder / f"{cid}.{name}.tif"
            self.writer.submit(self.root / rel, array, self.reference.crs, transform, self.nodata[name], compress)
            row[f"image:{name}"] = rel.as_posix()
        for name, (array, ignore) in targets.items():
            rel = folder / f"{cid}.{name}.tif"
            self.writer.submit(self.root / rel, array, self.reference.crs, transform, ignore, compress)
            row[f"target:{name}"] = rel.as_posix()
        row.update(fractions)
        return row


def check_probabilities(values: np.ndarray, name: str, scene: SceneSpec) -> None:
    """Soft labels must be probabilities: every labelled value within [0, 1]."""
    if values.size and (values.min() < 0 or values.max() > 1):
        raise InputError(
            f"{scene.targets[name]}: soft labels of target {name!r} (scene {scene.id}) hold values "
            f"{float(values.min()):g}..{float(values.max()):g}, not probabilities in [0, 1]; write probabilities "
            f"(float) or unset data.targets.{name}.soft"
        )


class ChipWriter:
    """Writes chip GeoTIFFs on a small thread pool (GDAL compresses and writes without the GIL).

    At most ``max_pending`` chips wait in memory; leaving the context waits for every write and raises
    the first error, so a scene's part file is only written after all its chips are complete.
    """

    def __init__(self, workers: int = WRITE_THREADS, max_pending: int = 16) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eoseg-chips")
        self.pending: deque[Future[Path]] = deque()
        self.max_pending = max_pending

    def submit(self, *args: Any) -> None:
        """Queue one :func:`write_geotiff` call; block while too many are waiting."""
        self.pending.append(self.pool.submit(write_geotiff, *args))
        while len(self.pending) > self.max_pending:
            self.pending.popleft().result()

    def __enter__(self) -> ChipWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                while self.pending:
                    self.pending.popleft().result()
        finally:
            for future in self.pending:
                future.cancel()
            self.pool.shutdown(wait=True)


@contextlib.contextmanager
def _maybe(aligned: Source, src: Source) -> Iterator[Source]:
    """Close a WarpedVRT made by :func:`align_to` (the source itself is closed by its own context)."""
    try:
        yield aligned
    finally:
        if aligned is not src:
            aligned.close()


def prepare(config: ExperimentConfig, overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """Turn the scenes of ``config.data`` into a chip dataset in ``config.data.root``.

    Scenes whose part file exists are skipped (resume); ``overwrite=True`` removes the earlier outputs
    first. Raises :class:`ConfigError` / :class:`InputError` for bad settings or inputs; scenes finished
    before the error stay finished.
    """
    data = config.data
    root = Path(data.root)
    plan = plan_dataset(data)
    check_output_folder(root, plan)
    parts_dir = root / ".parts"
    if overwrite:
        clear_outputs(root)
    signatures = {s.id: signature(data, s) for s in plan.scenes}
    parts: dict[str, dict[str, Any]] = {}
    resumed: list[str] = []
    for scene in plan.scenes:
        part = read_part(parts_dir / f"{scene.id}.json")
        if part is not None:
            if part["signature"] != signatures[scene.id]:
                raise ConfigError(
                    f"{root}: scene {scene.id} was prepared with other data settings; "
                    "use --overwrite (overwrite=True) or another data.root"
                )
            if not chips_present(root, part):  # chips deleted since: the scene is written again
                continue
            parts[scene.id] = part
            resumed.append(scene.id)
    todo = [s for s in plan.scenes if s.id not in parts]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), make_progress(progress) as bars:
        overall = bars.add_task("scenes", total=len(plan.scenes), completed=len(parts))
        for scene in todo:
            parts[scene.id] = prepare_scene(plan, scene, root, signatures[scene.id], bars)
            bars.advance(overall)
    return finish(config, plan, root, parts, resumed)


def check_output_folder(root: Path, plan: DatasetPlan) -> None:
    """``data.root`` must be a folder (or not exist yet) and none of its outputs may be an input."""
    if root.exists() and not root.is_dir():
        raise InputError(f"data.root (--out) {root}: is a file, not a folder; choose another output folder")
    inputs = [p for s in plan.scenes for p in (*s.images.values(), *s.targets.values())]
    if plan.data.scenes_file is not None:
        inputs.append(plan.data.scenes_file)
    outputs = [root / name for name in ("manifest.parquet", "stats.json", "config.yaml")]
    check_not_inputs(inputs, files=[root, *outputs], folders=[root / "chips", root / ".parts"], option="--out")
    writable_folder(root, "data.root (--out)")


def prepare_scene(plan: DatasetPlan, scene: SceneSpec, root: Path, sig: str, bars: Any = None) -> dict[str, Any]:
    """Write one scene's chips, then its part file (last, atomically); return the part."""
    shutil.rmtree(root / "chips" / scene.id, ignore_errors=True)  # leftovers of an interrupted run
    rows = []
    with contextlib.ExitStack() as stack:
        preparer = ScenePreparer(plan, scene, root, stack)
        windows = preparer.windows()
        task = bars.add_task(scene.id, total=len(windows)) if bars is not None else None
        if 1.0 not in plan.data.chips.scales:
            preparer.stats_pass()
        for scale, window in windows:
            row = preparer.chip(scale, window)
            if row is not None:
                rows.append(row)
            _advance(bars, task)
        if bars is not None:
            bars.remove_task(task)
        stats = preparer.stats
        empty = preparer.invalid_windows == len(windows)
    if empty:
        nodata = ", ".join(f"{n}: {plan.nodata(scene, n):g}" for n in plan.image_names)
        warnings.warn(f"{next(iter(scene.images.values()))}: scene {scene.id} has no valid pixel (every pixel is "
                      f"nodata or NaN; nodata {nodata}): it gives 0 chips; check data.nodata or drop the scene",
                      EmptySceneWarning, stacklevel=2)
    part = {"signature": sig, "scene": scene.id, "rows": rows, "stats": stats.to_dict(), "empty": empty}
    write_text_atomic(root / ".parts" / f"{scene.id}.json", json.dumps(part))
    return part


def _advance(bars: Any, task: Any) -> None:
    if bars is not None:
        bars.advance(task)


def read_part(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def chips_present(root: Path, part: dict[str, Any]) -> bool:
    """Whether every chip file a finished scene's part lists still exists."""
    return all((root / str(v)).is_file() for row in part["rows"] for k, v in row.items()
               if k.startswith(("image:", "target:")) and v is not None)


def clear_outputs(root: Path) -> None:
    """Remove what :func:`prepare` wrote in ``root`` (manifest first, so nothing lists removed chips)."""
    for name in ("manifest.parquet", "stats.json", "config.yaml"):
        (root / name).unlink(missing_ok=True)
    for name in (".parts", "chips"):
        shutil.rmtree(root / name, ignore_errors=True)


def finish(
    config: ExperimentConfig, plan: DatasetPlan, root: Path, parts: dict[str, dict[str, Any]], resumed: list[str]
) -> PrepareResult:
    """Merge the parts into manifest.parquet (with folds), stats.json and config.yaml."""
    data = plan.data
    regions = {s.id: s.region for s in plan.scenes}
    if data.fold_by == "region":
        missing = [s for s, r in regions.items() if r is None]
        if missing:
            raise ConfigError(
                f"data.fold_by=region but scene(s) {missing[:5]} have no region; set it or use fold_by=scene"
            )
    group_of = {s: (regions[s] if data.fold_by == "region" else s) for s in regions}
    rows = [row for s in plan.scenes for row in parts[s.id]["rows"]]
    counts: dict[str, int] = dict.fromkeys(group_of.values(), 0)
    for row in rows:
        counts[group_of[row["scene"]]] += 1
    folds = assign_folds(counts, data.folds, data.seed)
    frame = manifest_frame(rows, plan)
    frame.insert(2, "region", frame["scene"].map(regions))
    frame["fold"] = frame["scene"].map(lambda s: folds[group_of[s]]).astype("int64")
    manifest = root / "manifest.parquet"
    with atomic_path(manifest) as tmp:
        frame.to_parquet(tmp, index=False)
    stats = StatsAccumulator.from_dict(parts[plan.scenes[0].id]["stats"])
    for scene in plan.scenes[1:]:
        stats.merge(StatsAccumulator.from_dict(parts[scene.id]["stats"]))
    first = plan.scenes[0]
    stats_path = write_stats(
        root / "stats.json",
        DatasetStats(
            inputs=list(plan.bandmath.inputs),
            bands={k: list(v) for k, v in plan.bands.items()},
            nodata={name: plan.nodata(first, name) for name in plan.image_names},
            dtypes={name: plan.infos[first.id][name].dtype for name in plan.image_names},
            channels=stats.summary(),
            scales=dict(plan.data.scale),
            scene_nodata={s.id: {name: plan.nodata(s, name) for name in plan.image_names} for s in plan.scenes},
            nodata_override=dict(plan.data.nodata),
        ),
    )
    save_config(config, root / "config.yaml")
    empty = [s.id for s in plan.scenes if parts[s.id].get("empty")]
    return PrepareResult(root, manifest, stats_path, len(frame), len(plan.scenes), resumed, empty)


def manifest_frame(rows: list[dict[str, Any]], plan: DatasetPlan) -> pd.DataFrame:
    """The manifest columns in a fixed order (also when there are no chips)."""
    columns = [
        "chip_id",
        "scene",
        "scale",
        "res_x",
        "res_y",
        "row_off",
        "col_off",
        "height",
        "width",
        "size",
        "crs",
        "valid_fraction",
    ]
    columns += [f"image:{n}" for n in plan.image_names]
    columns += [f"target:{n}" for n in plan.data.targets]
    for name, k in plan.num_classes.items():
        columns += (
            [f"frac:{name}:{i}" for i in range(k)] if plan.data.targets[name].kind == "vector" else [f"frac:{name}"]
        )
    return pd.DataFrame(rows, columns=columns)
