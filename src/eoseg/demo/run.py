"""The demo pipeline: synthetic town -> prepare -> train -> predict (TTA) -> vectorize -> evaluate.

Everything lands in one folder::

    town/          the generated scenes (GeoTIFF + GeoPackage footprints) and train.csv
    config.yaml    the resolved experiment config
    chips/         the prepared chip dataset (manifest, stats, chips)
    runs/demo/     the training run: checkpoints, metrics.csv, report.html
    prediction/    the held-out scene: prob/mask rasters, polygons, quicklook and error map PNGs
    metrics.json   pixel and object metrics on the held-out scene, and the time of each step
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoseg.config.loader import load_config, save_config
from eoseg.config.schema import ExperimentConfig
from eoseg.demo.town import TRAIN_CSV, TownScene, make_town
from eoseg.errors import EosegError, InputError
from eoseg.geo.atomic import write_text_atomic
from eoseg.geo.raster import raster_info
from eoseg.progress import console

MARKER = "eoseg-demo.json"
"""Written first into the demo folder; only a folder with it (or an empty one) is reused."""
PRESET = "demo"
STEPS = 6
OWN_OUTPUTS = ("town", "chips", "runs", "prediction", "config.yaml", "metrics.json")
TARGETS = {"pixel_iou": 0.80, "object_f1": 0.70}
"""Targets of the full demo on the held-out scene (printed by the CLI, checked by benchmarks/demo.py)."""


@dataclass(frozen=True)
class DemoSize:
    """The knobs that differ between the full demo and ``--quick``: town size and training length."""

    scenes: int
    size: int
    overrides: tuple[str, ...]


FULL = DemoSize(scenes=7, size=512, overrides=())
QUICK = DemoSize(scenes=4, size=384, overrides=("train.epochs=10", "train.batch_size=8"))


@dataclass
class DemoResult:
    """Where everything went, the held-out metrics and the seconds (wall, CPU) each step took."""

    out_dir: Path
    town: list[TownScene]
    config: Path
    chips: Path
    run_dir: Path
    checkpoint: Path
    report: Path | None
    prob: Path | None
    mask: Path
    polygons: Path
    quicklook: Path
    error_map: Path
    metrics_file: Path
    metrics: dict[str, Any]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def pixel_iou(self) -> float:
        return float(self.metrics["pixel"]["micro"]["iou"])

    @property
    def pixel_f1(self) -> float:
        return float(self.metrics["pixel"]["micro"]["f1"])

    @property
    def object_f1(self) -> float:
        return float(self.metrics["objects"]["overall"]["f1"])

    def outputs(self) -> dict[str, Path]:
        """Every output worth opening, by what it is."""
        found = {
            "town (scenes + footprints)": self.town[0].image.parent,
            "resolved config": self.config,
            "chip dataset": self.chips,
            "training run": self.run_dir,
            "checkpoint": self.checkpoint,
            "training report": self.report,
            "probabilities": self.prob,
            "mask": self.mask,
            "polygons": self.polygons,
            "quicklook": self.quicklook,
            "error map": self.error_map,
            "metrics": self.metrics_file,
        }
        return {k: v for k, v in found.items() if v is not None}


def demo_config(
    town: list[TownScene], out_dir: Path, size: DemoSize, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """The ``demo`` preset on the town's training scenes, writing into ``out_dir``; one validation scene."""
    train_scenes = [s for s in town if s.split == "train"]
    settings = [
        f"data.scenes_file={town[0].image.parent / TRAIN_CSV}",
        f"data.root={out_dir / 'chips'}",
        f"data.folds={len(train_scenes)}",
        f"train.out={out_dir / 'runs'}",
        *size.overrides,
        *overrides,
    ]
    return load_config(PRESET, settings)


def run_demo(
    out_dir: str | Path = "eoseg-demo",
    *,
    quick: bool = False,
    seed: int = 0,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> DemoResult:
    """Run the whole pipeline on a synthetic town in ``out_dir`` and return the held-out metrics and outputs.

    ``quick`` makes a smaller town and trains for fewer epochs (for tests); ``overrides`` are dotted config
    settings applied last (e.g. ``train.epochs=20``). The model trains on a GPU when one is present.
    """
    out_dir = Path(out_dir).resolve()
    size = QUICK if quick else FULL
    claim_folder(out_dir, {"seed": seed, "quick": quick, "overrides": list(overrides)})
    with cpu_threads():
        return _run(out_dir, size, seed, overrides, progress)


def _run(out_dir: Path, size: DemoSize, seed: int, overrides: Sequence[str], progress: bool) -> DemoResult:
    """The six steps of :func:`run_demo` in a claimed folder."""
    # the heavy layers are imported here so that ``eoseg --help`` stays fast
    from eoseg.data.prepare import prepare
    from eoseg.inference.predictor import predict_scene
    from eoseg.metrics.evaluate import evaluate, object_scores
    from eoseg.metrics.truth import truth_on_grid
    from eoseg.models.checkpoint import load_bundle
    from eoseg.post.vectorize import vectorize
    from eoseg.report.quicklook import error_map_png, quicklook_png
    from eoseg.training.train import train

    timings: dict[str, dict[str, float]] = {}

    with _step(1, "generate the synthetic town", timings, "town"):
        town = make_town(out_dir / "town", seed=seed, n_scenes=size.scenes, size=size.size)
        held_out = next(s for s in town if s.split == "holdout")
        console.print(f"{len(town) - 1} training scenes and 1 held-out scene of {size.size}x{size.size} px at 0.5 m, "
                      f"{sum(s.buildings for s in town)} buildings", highlight=False)

    with _step(2, "prepare chips", timings, "prepare"):
        config = demo_config(town, out_dir, size, overrides)
        config_path = save_config(config, out_dir / "config.yaml")
        prepared = prepare(config, overwrite=True, progress=progress)
        console.print(f"{prepared.chips} chips of {config.data.chips.size} px in {prepared.root}", highlight=False)

    with _step(3, f"train {config.model.arch}-{config.model.encoder} for {config.train.epochs} epochs", timings,
               "train"):
        trained = train(config, progress=progress, overwrite=True)
        checkpoint = trained.best_checkpoint or trained.last_checkpoint
        if checkpoint is None:
            raise EosegError(f"{trained.run_dir}: training wrote no checkpoint; see {trained.run_dir / 'metrics.csv'}")
        score = f"{trained.best_score:.3f}" if trained.best_score is not None else "n/a"
        console.print(f"best {trained.monitor} on the validation scene: {score}", highlight=False)

    prediction_dir = out_dir / "prediction"
    with _step(4, f"predict the held-out scene {held_out.id} (TTA {config.predict.tta})", timings, "predict"):
        bundle = load_bundle(checkpoint)
        predicted = predict_scene([bundle], {"image": held_out.image}, prediction_dir, config.predict, config.post,
                                  name=held_out.id, progress=progress)
        if predicted.mask is None:
            raise EosegError(f"{prediction_dir}: the prediction wrote no mask raster for {held_out.id}")

    polygons_path = prediction_dir / f"{held_out.id}.polygons.gpkg"
    with _step(5, "vectorize", timings, "vectorize"):
        polygons = vectorize(predicted.mask, polygons_path, prob=predicted.prob, min_area=config.post.min_area,
                             simplify=config.post.simplify)
        console.print(f"{len(polygons)} building polygons", highlight=False)

    with _step(6, "evaluate against the true footprints", timings, "evaluate"):
        pixel = evaluate([predicted.mask], [held_out.footprints], classes=config.data.classes, objects=False)
        pixel_size = abs(raster_info(predicted.mask).transform.a)
        objects = object_scores([(polygons_path, held_out.footprints)], pixel_size=pixel_size)
        quicklook = quicklook_png(held_out.image, predicted.mask, prediction_dir / f"{held_out.id}.quicklook.png",
                                  polygons=polygons_path)
        error_map = error_map_png(predicted.mask, truth_on_grid(held_out.footprints, predicted.mask),
                                  prediction_dir / f"{held_out.id}.errors.png")

    metrics = {"scene": held_out.id, "pixel": pixel["pixel"], "objects": objects, "timings": timings}
    metrics_file = write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return DemoResult(
        out_dir=out_dir, town=town, config=config_path, chips=prepared.root, run_dir=trained.run_dir,
        checkpoint=checkpoint, report=trained.report, prob=predicted.prob, mask=predicted.mask,
        polygons=polygons_path, quicklook=quicklook, error_map=error_map, metrics_file=metrics_file,
        metrics=metrics, timings=timings,
    )


def claim_folder(out_dir: Path, settings: dict[str, Any]) -> None:
    """Make ``out_dir`` the demo's folder: new, empty, or an earlier demo's (whose outputs are replaced).

    A folder with other content is refused, so a mistyped ``--out`` never deletes anyone's files.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise InputError(f"{out_dir}: folder is not empty and not an eoseg demo folder; "
                             "choose a new or empty folder with --out")
        for name in OWN_OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    write_text_atomic(out_dir / MARKER, json.dumps({"eoseg_demo": True, **settings}, indent=2))


@contextmanager
def cpu_threads() -> Iterator[int]:
    """Use the CPU cores that are free for torch's threads while the demo runs (at least one).

    torch starts one thread per core; on a machine that other processes keep busy, threads that wait
    for each other at every operation make a CPU training several times slower than one thread does.
    """
    import torch

    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = int(os.getloadavg()[0])  # cores that other processes kept busy over the last minute
    free = max(1, min(before, cores - busy))
    if not torch.cuda.is_available() and free < before:
        console.print(f"the CPU is busy (load {os.getloadavg()[0]:.1f} on {cores} cores): torch uses {free} "
                      f"thread(s)", highlight=False)
        torch.set_num_threads(free)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextmanager
def _step(number: int, title: str, timings: dict[str, dict[str, float]], key: str) -> Iterator[None]:
    """Announce a step, then record its wall and CPU seconds."""
    console.rule(f"[bold]{number}/{STEPS}[/] {title}", align="left")
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    timings[key] = {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)}
