"""Whole-scene prediction: windows read ahead in threads, batches through every model and TTA transform
on the device, overlaps blended tile by tile (on the device), finished tiles encoded and written in a
background thread while the next windows run, then COGs.

Memory is bounded by the window size, the batch size and the blend's open tiles: a band of windows along
the scene's shorter side, cut into strips of ``predict.strip`` pixels when it is longer (see
:mod:`eoseg.inference.windows`), whatever the scene's sides.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rich.progress import TextColumn

from eoseg.config.schema import PostSpec, PredictSpec
from eoseg.errors import ConfigError, InputError
from eoseg.geo.atomic import check_not_inputs, writable_folder
from eoseg.geo.cog import GDAL_ENV
from eoseg.geo.products import write_heads
from eoseg.inference.blend import BlendAccumulator
from eoseg.inference.engine import EnsembleRunner, auto_batch_size, common_heads, resolve_device
from eoseg.inference.outputs import main_head, member_key, plan_outputs, scene_rasters
from eoseg.inference.reader import InputRecipe, SceneImages, WindowReader, check_scene
from eoseg.inference.stages import StageClock
from eoseg.inference.windows import STRIP, WindowLayout
from eoseg.inference.writer import SceneWriter
from eoseg.models.bundle import ModelBundle
from eoseg.post.vectorize import scene_polygons
from eoseg.progress import make_progress
from eoseg.stopping import safe_points, stop_point


@dataclass
class SceneOutputs:
    """Paths written for one scene, and how long it took."""

    name: str
    prob: Path | None = None
    mask: Path | None = None
    values: dict[str, Path] = field(default_factory=dict)
    heads: Path | None = None  # JSON of image-level heads (class scores, scalars, direction) over the scene
    polygons: Path | None = None  # predict.polygons: GeoPackage of the final mask
    windows: int = 0
    seconds: float = 0.0
    pixels: int = 0
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage (eoseg.inference.stages.STAGES)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [p for p in (self.prob, self.mask, *self.values.values(), self.heads, self.polygons) if p is not None]

    @property
    def mpx_per_s(self) -> float:
        return self.pixels / 1e6 / self.seconds if self.seconds > 0 else float("nan")


def ensure_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and check that files can be written there (fail before any work)."""
    writable_folder(out_dir, "--out")


def scene_name(images: dict[str, Path]) -> str:
    """Default output name of a scene: the file name of its first image without suffix."""
    return Path(next(iter(images.values()))).stem


def check_bundles(bundles: Sequence[ModelBundle]) -> None:
    """Models of one pass must take the same images with the same band counts, and agree on the task,
    the classes and the main output head (an ensemble averages like with like)."""
    if not bundles:
        raise ConfigError("predict: give at least one checkpoint")
    first = bundles[0]
    name = first.source or "the first checkpoint"
    expected = {n: len(b) for n, b in first.bands.items()}
    main = main_head(first.config.model.heads)
    for other in bundles[1:]:
        counts = {n: len(b) for n, b in other.bands.items()}
        if counts != expected:
            raise ConfigError(
                f"{other.source or 'checkpoint'}: takes images (bands) {counts} but "
                f"{name} takes {expected}; "
                "ensemble models trained on the same inputs"
            )
        task = (other.config.task.kind, other.classes)
        if task != (first.config.task.kind, first.classes):
            raise ConfigError(
                f"{other.source or 'checkpoint'}: a {task[0]} model of classes {task[1]} but {name} is a "
                f"{first.config.task.kind} model of classes {first.classes}; an ensemble needs models of one task "
                "and the same classes: predict them in separate runs"
            )
    if len(bundles) > 1 and main is not None and main not in common_heads(bundles):
        shapes = [f"{b.source or 'checkpoint'}: {_head_shape(b, main)}" for b in bundles]
        raise ConfigError(f"head {main!r} differs between the checkpoints ({'; '.join(shapes)}); an ensemble needs "
                          "the same output heads: predict them in separate runs")


def _head_shape(bundle: ModelBundle, name: str) -> str:
    head = bundle.config.model.heads.get(name)
    return "none" if head is None else f"{head.kind}, {head.channels} channel(s)"


def predict_scene(
    bundles: Sequence[ModelBundle],
    images: dict[str, Path],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    name: str | None = None,
    progress: bool = True,
    georeferenced: bool = True,
) -> SceneOutputs:
    """Predict one scene with one or more models (ensemble) and write its rasters into ``out_dir``.

    ``images`` maps the models' image names to files (``{"image": a.tif}`` or ``{"pre": a, "post": b}``);
    ``georeferenced=False``: the scene has no CRS by design (no :class:`NoCrsWarning`, see :func:`check_scene`).
    """
    check_bundles(bundles)
    out_dir = Path(out_dir)
    ensure_writable(out_dir)
    scene = check_scene({k: Path(v) for k, v in images.items()}, bundles[0], spec.allow_dtype, georeferenced)
    name = name or scene_name(scene.paths)
    device = resolve_device(spec.device)
    window = spec.window or bundles[0].chip_size
    overlap = spec.overlap if spec.overlap is not None else window // 4
    for bundle in bundles:
        stride = int(getattr(bundle.model, "output_stride", 1))
        if window % stride:
            fit = window // stride * stride or stride
            raise ConfigError(
                f"predict.window={window}: must be a multiple of the model's stride {stride} "
                f"({bundle.source or 'checkpoint'}); e.g. predict.window={fit}"
            )
    layout = WindowLayout(scene.height, scene.width, window, overlap, walk_order(scene), spec.strip or STRIP)
    batch_size = spec.batch_size or auto_batch_size(window, device)

    recipes: list[InputRecipe] = []
    recipe_of: list[int] = []
    for bundle in bundles:
        recipe = InputRecipe(bundle)
        index = next((i for i, r in enumerate(recipes) if r.key() == recipe.key()), None)
        if index is None:
            recipes.append(recipe)
            index = len(recipes) - 1
        recipe_of.append(index)

    first = bundles[0].config
    plan = plan_outputs(common_heads(bundles), first, spec, post, len(bundles))
    runner = EnsembleRunner(bundles, spec, device, recipe_of, vote_head=plan.main if plan.vote else None)
    channels = {n: h.channels for n, h in runner.dense_heads.items()}
    acc_channels = {n: channels[n.split("@")[0]] for n in plan.accumulated}
    rasters = scene_rasters(plan, scene, out_dir, name)
    check_not_inputs(scene.paths.values(), files=[r.path for r in rasters]
                     + [out_dir / f"{name}.heads.json", out_dir / f"{name}.polygons.gpkg"])
    image_heads = SceneMeans(len(layout))

    started = time.perf_counter()
    clock = StageClock()
    columns = TextColumn("{task.fields[rate]}")
    with (
        rasterio.Env(**GDAL_ENV),
        make_progress(progress, columns) as bar,
        WindowReader(scene, recipes, workers=spec.workers, prefetch=2 * batch_size, clock=clock) as reader,
        SceneWriter(rasters, clock=clock, compress=spec.compress) as writer,
        # reuse: each batch is consumed (forward, blend) before the next is taken; on failure: stop reading first
        closing(reader.batches(layout, batch_size, pin_memory=device.type == "cuda", reuse=True)) as batches,
        BlendAccumulator(layout, acc_channels, spec.blend, device=device, spill_dir=out_dir) as accumulator,
        # SIGINT/SIGTERM stop the loop between batches (eoseg.stopping), never inside a lock of its threads,
        # and never while the writer's threads build the COGs; left first, so the cleanup above still runs
        safe_points(),
    ):
        task = bar.add_task(f"predict {name}", total=len(layout), rate="")
        done_px = 0
        waiting = time.perf_counter()
        for batch in batches:
            stop_point()
            forward = time.perf_counter()
            clock.add("wait", forward - waiting)
            result = runner.run(batch.inputs)
            values = {n: result.dense[n] for n in plan.accumulated if n in result.dense}
            for m, member in enumerate(result.members):
                values[member_key(plan.main, m)] = member
            if result.image:
                for j, valid in enumerate(batch.valid.numpy()):
                    image_heads.add({n: v[j] for n, v in result.image.items()}, int(valid.sum()),
                                    batch.windows[j].index)
            blend = time.perf_counter()
            clock.add("forward", blend - forward)
            tiles = accumulator.add_batch(batch.windows, values, batch.valid)
            clock.add("blend", time.perf_counter() - blend)
            if tiles:
                writer.submit(tiles)
                done_px += sum(t.height * t.width for t in tiles)
                rate = done_px / 1e6 / max(time.perf_counter() - started, 1e-9)
                bar.update(task, rate=f"{rate:.2f} Mpx/s")
            bar.advance(task, len(batch.windows))
            waiting = time.perf_counter()
        stop_point()  # asked for during the last batch: no COGs
        if not accumulator.finished:  # every window covers its tiles: a layout error, never the user's
            raise RuntimeError(f"{name}: {len(accumulator.open)} blend tiles were not finished")
        # a stop asked for while the COGs are built waits for them (their threads must not lose the files
        # they write to the cleanup) and keeps them: they are finished
        paths = dict(zip([r.kind for r in rasters], writer.finish(), strict=True))

    outputs = SceneOutputs(
        name,
        paths.pop("prob", None),
        paths.pop("mask", None),
        paths,
        windows=len(layout),
        pixels=scene.height * scene.width,
        stages=clock.seconds,
    )
    summary = image_heads.summary(runner.heads) if image_heads.count else None
    if outputs.mask is not None and plan.post is not None and plan.post.needs_finalize():
        plan.post.finalize(outputs.mask, summary)  # gate and minimum area: a second pass by square blocks
    if summary is not None:
        outputs.heads = write_heads(out_dir / f"{name}.heads.json", summary)
    if spec.polygons and outputs.mask is not None and plan.post is not None:  # from the final mask
        outputs.polygons = scene_polygons(outputs.mask, out_dir / f"{name}.polygons.gpkg", prob=outputs.prob,
                                          simplify=post.simplify, multilabel=plan.post.kind == "multilabel")
    outputs.seconds = time.perf_counter() - started
    return outputs


def walk_order(scene: SceneImages) -> str:
    """Window order: across the shorter side (``auto``), except row bands for a striped (untiled) first
    image wider than tall, whose strips column bands would read once per column band."""
    if scene.width > scene.height:
        with rasterio.open(scene.paths[next(iter(scene.paths))]) as src:
            if src.block_shapes and src.block_shapes[0][1] >= scene.width:
                return "rows"
    return "auto"


def check_names(names: Sequence[str]) -> None:
    """Output names must be unique (two scenes must not write the same files)."""
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})
    if duplicates:
        raise InputError(
            f"scenes {duplicates}: two scenes would write the same outputs; rename the files or "
            "predict them into different folders"
        )


def output_names(
    bundles: Sequence[ModelBundle], spec: PredictSpec, post: PostSpec, name: str
) -> list[str]:
    """File names ``predict_scene`` writes for scene ``name`` (heads.json: when a head is image-level)."""
    heads = common_heads(bundles)
    plan = plan_outputs(heads, bundles[0].config, spec, post, len(bundles))
    names = [f"{name}.prob.tif", f"{name}.mask.tif"] if plan.post is not None else []
    names += [f"{name}.{head}.tif" for head in plan.value_heads]
    if any(h.kind != "dense" for h in heads.values()):
        names.append(f"{name}.heads.json")
    if spec.polygons and plan.post is not None:
        names.append(f"{name}.polygons.gpkg")
    return names


def check_outputs_not_inputs(
    bundles: Sequence[ModelBundle], scenes: Sequence[dict[str, Path]], names: Sequence[str], out_dir: Path
) -> None:
    """No output of any scene (``<name>.prob.tif``, ...) may be one of the scenes' images or a checkpoint."""
    inputs = [*(p for s in scenes for p in s.values()), *(b.source for b in bundles if b.source)]
    products = ["prob.tif", "mask.tif", "heads.json", "quicklook.png", "polygons.gpkg",
                *(f"{h}.tif" for b in bundles for h in b.config.model.heads)]
    check_not_inputs(inputs, files=[Path(out_dir) / f"{n}.{p}" for n in names for p in products])


def predict_scenes(
    bundles: Sequence[ModelBundle],
    scenes: Sequence[dict[str, Path]],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> list[SceneOutputs]:
    """Predict several scenes one after the other; names default to the first image's file name."""
    names = list(names) if names is not None else [scene_name(s) for s in scenes]
    if len(names) != len(scenes):
        raise ValueError("give one name per scene")
    check_names(names)
    check_outputs_not_inputs(bundles, scenes, names, Path(out_dir))
    ensure_writable(Path(out_dir))
    return [
        predict_scene(bundles, s, out_dir, spec, post, n, progress)
        for s, n in zip(scenes, names, strict=True)
    ]


class SceneMeans:
    """Valid-pixel-weighted means over the scene of the image-level heads of every window, summed in the
    band walk's order (:attr:`SceneWindow.index`) whatever order the windows came in (a strip walk gives the
    same bits); a few numbers per window are kept until :meth:`summary`."""

    def __init__(self, windows: int) -> None:
        self.terms: dict[str, np.ndarray] = {}  # head -> (windows, C) float64: weight x value, by index
        self.added = np.zeros(windows, bool)
        self.count = 0

    def add(self, values: dict[str, np.ndarray], weight: int, index: int) -> None:
        """Window ``index``'s head values, weighted by its ``weight`` valid pixels."""
        if not values or weight == 0:
            return
        for name, value in values.items():
            if name not in self.terms:
                self.terms[name] = np.zeros((len(self.added), *np.shape(value)), np.float64)
            self.terms[name][index] = weight * value.astype(np.float64)
        self.added[index] = True
        self.count += weight

    @property
    def sums(self) -> dict[str, np.ndarray]:
        """Sums of the terms, one by one in index order (numpy's pairwise sum would round differently)."""
        sums = {}
        for name, terms in self.terms.items():
            total = 0
            for term in terms[self.added]:
                total = total + term
            sums[name] = total
        return sums

    def summary(self, heads: dict) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for name, total in self.sums.items():
            mean = total / self.count
            entry: dict[str, object] = {"kind": heads[name].kind, "mean": mean.tolist()}
            if heads[name].kind == "direction":
                x, y = mean
                entry["angle_deg"] = math.degrees(math.atan2(x, y)) % 360.0  # (x, y) = (sin, cos)
            out[name] = entry
        return out
