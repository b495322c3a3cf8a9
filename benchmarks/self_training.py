"""Benchmark self-training under a domain shift: labelled-only vs self-trained IoU and object F1, same run.

Two synthetic towns (``eoseg.demo.town``): town A in the default style gives the few labelled scenes; town B
(:data:`~eoseg.demo.town.SHIFTED_STYLE`: other roof colours, afternoon sun from the south-west, longer
shadows) gives many unlabelled scenes plus held-out labelled scenes. ``eoseg self-train`` (library call)
trains the teacher on town A only (round 0), pseudo-labels town B's unlabelled scenes and trains students
(rounds 1..N) on town A mixed with them; every round's best checkpoint then predicts town B's held-out
scenes, which are scored with the same metrics as ``eoseg evaluate`` (pixel IoU, SpaceNet object F1). The
baseline is round 0 of the same run; the script prints both and the difference.

Usage: uv run python benchmarks/self_training.py [--out DIR] [--size 384] [--labelled 3] [--unlabelled 4]
       [--test 2] [--epochs 10] [--rounds 1] [--rule soft] [--share 0.5] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from eoseg.config.loader import load_config
from eoseg.data.prepare import prepare
from eoseg.demo.town import SHIFTED_STYLE, TRAIN_CSV, make_town
from eoseg.geo.raster import raster_info
from eoseg.inference.predictor import predict_scene
from eoseg.metrics.evaluate import evaluate, object_scores
from eoseg.models.checkpoint import load_bundle
from eoseg.post.vectorize import vectorize
from eoseg.selftrain.rounds import self_train


def score(checkpoint: Path, scenes: list, out: Path, config) -> tuple[float, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--size", type=int, default=384, help="scene size in pixels (0.5 m)")
    parser.add_argument("--labelled", type=int, default=3, help="labelled town-A scenes (one validates)")
    parser.add_argument("--unlabelled", type=int, default=4, help="unlabelled town-B scenes")
    parser.add_argument("--test", type=int, default=2, help="held-out labelled town-B scenes")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rule", default="soft", choices=["soft", "hard", "image"])
    parser.add_argument("--share", type=float, default=0.5, help="selftrain.mix.share")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        out = (args.out or Path(tmp)).resolve()
        started = time.perf_counter()
        make_town(out / "town-a", seed=args.seed, n_scenes=args.labelled + 1, size=args.size)
        town_b = make_town(out / "town-b", seed=args.seed + 100, n_scenes=args.unlabelled + args.test,
                           size=args.size, holdout=args.test, nodata_border=False, style=SHIFTED_STYLE)
        unlabelled = [{"image": s.image} for s in town_b if s.split == "train"]
        test = [s for s in town_b if s.split == "holdout"]
        config = load_config("demo", [
            f"data.scenes_file={out / 'town-a' / TRAIN_CSV}", f"data.root={out / 'chips'}",
            f"data.folds={args.labelled}", f"train.out={out / 'runs'}", f"train.epochs={args.epochs}",
            "train.tensorboard=false", f"selftrain.pseudo.rule={args.rule}", f"selftrain.mix.share={args.share}",
        ])
        prepare(config, overwrite=True, progress=False)
        rounds = self_train(config, unlabelled, args.rounds, progress=False, from_teacher=True)
        results = []
        for entry in rounds:
            iou, f1 = score(Path(entry["checkpoint"]), test, out / "eval" / f"round{entry['round']}", config)
            results.append((entry["round"], entry["pseudo_chips"], iou, f1))
        seconds = time.perf_counter() - started
    print(f"self-training benchmark: {args.labelled} labelled town-A scenes, {len(unlabelled)} unlabelled and "
          f"{len(test)} held-out town-B scenes (shifted roofs and sun) of {args.size} px; {args.epochs} epochs "
          f"per round, rule {args.rule}, share {args.share:g}; {torch.get_num_threads()} threads, {seconds:.0f} s")
    print(f"{'round':>5} {'pseudo chips':>12} {'pixel IoU':>10} {'object F1':>10}")
    for number, chips, iou, f1 in results:
        print(f"{number:>5} {chips:>12} {iou:>10.4f} {f1:>10.4f}")
    base, best = results[0], results[-1]
    print(f"labelled-only (round 0): IoU {base[2]:.4f}, object F1 {base[3]:.4f}")
    print(f"self-trained (round {best[0]}): IoU {best[2]:.4f}, object F1 {best[3]:.4f}")
    print(f"difference: IoU {best[2] - base[2]:+.4f} (ratio {best[2] / max(base[2], 1e-9):.3f}), "
          f"object F1 {best[3] - base[3]:+.4f}")


if __name__ == "__main__":
    main()
