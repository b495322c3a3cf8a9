"""Benchmark self-training under a domain shift: self-trained vs a labelled-only control of the same budget.

Two synthetic towns (``eoseg.demo.town``) per seed: town A in the default style gives the few labelled
scenes; town B (:data:`~eoseg.demo.town.SHIFTED_STYLE`: other roof colours, afternoon sun from the
south-west, longer shadows) gives the unlabelled scenes plus ``--test`` held-out labelled scenes.
``eoseg self-train`` (library call, ``--from-teacher``) trains the teacher on town A only (round 0),
pseudo-labels town B's unlabelled scenes (TTA-averaged probabilities, ``selftrain.pseudo``) and trains a
student from the teacher on town A mixed with them (``selftrain.mix``). The control gets the same budget
without the unlabelled data: it also starts from the teacher and trains on town A only for as many optimizer
steps as the student took. Every model then predicts town B's held-out scenes, scored with the metrics of
``eoseg evaluate`` (micro pixel IoU, SpaceNet object F1 at IoU >= 0.5). The script prints, per seed and on
average, the teacher, the control and the student, and the student's difference to the control (the gain
that the unlabelled scenes bring, the extra training steps taken out).

Usage: uv run python benchmarks/self_training.py [--out DIR] [--size 384] [--labelled 3] [--unlabelled 4]
       [--test 3] [--epochs 10] [--rule soft] [--every 5 | --share 0.5] [--kl] [--seeds 0 1] [--set KEY=VALUE ...]

Measured (2026-12-02, 2 shared CPU cores under heavy load, ``--set`` as below, 3 held-out town-B scenes):
the self-trained student is better than its teacher but WORSE than the labelled-only control of the same
budget, i.e. the earlier "gain" over round 0 came from the extra training steps, not from the unlabelled
scenes. Seed 0, IoU / object F1: teacher 0.367 / 0.482; ``--share 0.5``: control 0.451 / 0.555, student
0.416 / 0.535; ``--every 5 --kl``: control 0.429 / 0.475, student 0.394 / 0.424. Seed 1 (``--every 5 --kl``):
teacher 0.483 / 0.558, control 0.370 / 0.462, student 0.483 / 0.575, so a mean gain of +0.039 IoU / +0.031
F1 over two seeds whose signs disagree: not a reliable gain at these sizes. Negatives were not tried.

``--set`` passes more overrides of the ``demo`` preset, e.g. a smaller model and chips for a loaded CPU:
``--set data.chips.size=64 data.chips.overlap=0 model.arch_params.encoder_depth=3
'model.arch_params.decoder_channels=[16,16,8]'``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from eoseg.config.loader import config_to_dict, load_config, validate_config
from eoseg.config.schema import ExperimentConfig
from eoseg.data.prepare import prepare
from eoseg.demo.town import SHIFTED_STYLE, TRAIN_CSV, TownScene, make_town
from eoseg.geo.raster import raster_info
from eoseg.inference.predictor import predict_scene
from eoseg.metrics.evaluate import evaluate, object_scores
from eoseg.models.checkpoint import load_bundle, read_checkpoint
from eoseg.post.vectorize import vectorize
from eoseg.selftrain.rounds import self_train, selftrain_folder
from eoseg.training.train import train


def score(checkpoint: Path, scenes: list[TownScene], out: Path, config: ExperimentConfig) -> tuple[float, float]:
    """Micro pixel IoU and object F1 of ``checkpoint`` over the held-out ``scenes``."""
    bundle = load_bundle(checkpoint)
    masks, truths, pairs = [], [], []
    for scene in scenes:
        result = predict_scene([bundle], {"image": scene.image}, out, config.predict, config.post, scene.id,
                               progress=False)
        polygons = out / f"{scene.id}.gpkg"
        vectorize(result.mask, polygons, prob=result.prob, min_area=config.post.min_area)
        masks.append(result.mask)
        truths.append(scene.footprints)
        pairs.append((polygons, scene.footprints))
    pixel = evaluate(masks, truths, classes=config.data.classes, objects=False)["pixel"]["micro"]["iou"]
    objects = object_scores(pairs, pixel_size=abs(raster_info(masks[0]).transform.a))["overall"]["f1"]
    return float(pixel), float(objects)


def control_config(config: ExperimentConfig, teacher: str, steps: int, batches_per_epoch: int) -> ExperimentConfig:
    """Labelled-only training from the teacher for ``steps`` optimizer steps (the student's budget)."""
    raw = config_to_dict(config)
    raw["name"] = "control"
    raw["train"]["out"] = str(selftrain_folder(config) / "runs")
    raw["train"]["epochs"] = math.ceil(steps / batches_per_epoch)
    raw["train"]["max_steps"] = steps
    raw["model"]["init_checkpoint"] = teacher
    raw["selftrain"]["mix"] = None
    return validate_config(raw, "self-training benchmark control")


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    """Teacher, control and student of one seed: their steps and held-out scores."""
    make_town(out / "town-a", seed=seed, n_scenes=args.labelled + 1, size=args.size)
    town_b = make_town(out / "town-b", seed=seed + 100, n_scenes=args.unlabelled + args.test, size=args.size,
                       holdout=args.test, nodata_border=False, style=SHIFTED_STYLE)
    unlabelled = [{"image": s.image} for s in town_b if s.split == "train"]
    test = [s for s in town_b if s.split == "holdout"]
    mix = f"selftrain.mix.every={args.every}" if args.share is None else f"selftrain.mix.share={args.share}"
    overrides = [
        f"data.scenes_file={out / 'town-a' / TRAIN_CSV}", f"data.root={out / 'chips'}", f"data.folds={args.labelled}",
        f"train.out={out / 'runs'}", f"train.epochs={args.epochs}", f"train.seed={seed}", "train.tensorboard=false",
        f"selftrain.pseudo.rule={args.rule}", mix, *args.set,
    ]
    if args.kl:
        overrides.append("selftrain.mix.loss={mask: {kl: 1.0}}")
    config = load_config("demo", overrides)
    prepare(config, overwrite=True, progress=False)
    rounds = self_train(config, unlabelled, 1, progress=False, from_teacher=True)
    teacher, student = (Path(r["checkpoint"]) for r in rounds)
    student_steps = read_checkpoint(student.parent / "last.ckpt")["global_step"]
    teacher_steps = read_checkpoint(teacher.parent / "last.ckpt")["global_step"]
    control = train(control_config(config, str(teacher), student_steps, teacher_steps // args.epochs),
                    progress=False, report=False)
    checkpoints = {"teacher": teacher, "control": control.best_checkpoint or control.last_checkpoint,
                   "self-trained": student}
    steps = {"teacher": teacher_steps, "control": teacher_steps + control.steps,
             "self-trained": teacher_steps + student_steps}
    scores = {name: score(Path(path), test, out / "eval" / name, config) for name, path in checkpoints.items()}
    return {"seed": seed, "steps": steps, "scores": scores, "pseudo_chips": rounds[1]["pseudo_chips"],
            "test": [s.id for s in test]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--size", type=int, default=384, help="scene size in pixels (0.5 m)")
    parser.add_argument("--labelled", type=int, default=3, help="labelled town-A scenes (one validates)")
    parser.add_argument("--unlabelled", type=int, default=4, help="unlabelled town-B scenes")
    parser.add_argument("--test", type=int, default=3, help="held-out labelled town-B scenes")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the teacher and of the student")
    parser.add_argument("--rule", default="soft", choices=["soft", "hard", "image"])
    parser.add_argument("--every", type=int, default=5, help="selftrain.mix.every (one pseudo batch every k)")
    parser.add_argument("--share", type=float, default=None, help="selftrain.mix.share instead of --every")
    parser.add_argument("--kl", action="store_true", help="KL loss on the soft labels (selftrain.mix.loss)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides")
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results.append(run_seed(args, seed, (args.out or Path(tmp)).resolve() / f"seed{seed}"))
    seconds = time.perf_counter() - started
    mix = f"every {args.every}" if args.share is None else f"share {args.share:g}"
    print(f"self-training benchmark: {args.labelled} labelled town-A scenes, {args.unlabelled} unlabelled and "
          f"{args.test} held-out town-B scenes (shifted roofs and sun) of {args.size} px; {args.epochs} epochs for "
          f"the teacher and the student, rule {args.rule}, mix {mix}{', KL' if args.kl else ''}; seeds {args.seeds}; "
          f"overrides {args.set}; "
          f"{torch.get_num_threads()} threads, {seconds:.0f} s")
    print(f"{'seed':>4} {'model':>12} {'steps':>6} {'pixel IoU':>10} {'object F1':>10}")
    for r in results:
        for name, (iou, f1) in r["scores"].items():
            print(f"{r['seed']:>4} {name:>12} {r['steps'][name]:>6} {iou:>10.4f} {f1:>10.4f}")
    names = list(results[0]["scores"])
    mean = {n: [sum(r["scores"][n][i] for r in results) / len(results) for i in (0, 1)] for n in names}
    for n in names:
        print(f"mean {n:>12} {'':>6} {mean[n][0]:>10.4f} {mean[n][1]:>10.4f}")
    for r in results:
        (ci, cf), (si, sf) = r["scores"]["control"], r["scores"]["self-trained"]
        print(f"seed {r['seed']}: self-trained - labelled-only (same budget): IoU {si - ci:+.4f}, object F1 "
              f"{sf - cf:+.4f} ({r['pseudo_chips']} pseudo chips)")
    (ci, cf), (si, sf) = mean["control"], mean["self-trained"]
    print(f"mean: self-trained - labelled-only (same budget): IoU {si - ci:+.4f} (ratio {si / max(ci, 1e-9):.3f}), "
          f"object F1 {sf - cf:+.4f}")


if __name__ == "__main__":
    main()
