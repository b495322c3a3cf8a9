"""Benchmark: many small scenes on a local Ray instance, 1 worker (2 CPUs each) against 2 workers (1 CPU each),
with a local one-after-another run in this process as the baseline of the same run.

Every configuration predicts the same generated scenes with a random resnet18-Unet through
``eoseg.inference.distributed.run_scenes`` (the code `eoseg predict --ray` runs) into its own folder;
Ray start-up is paid once before the timings (one instance for all), worker start-up is paid by a warm-up
scene per configuration.

Usage: uv run python benchmarks/ray_predict.py [--scenes 16 --size 256 --window 128 --cpus 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

from eoseg.config.schema import PostSpec, PredictSpec, RaySpec
from eoseg.inference.distributed import LOCAL_RAY_ENV, RAY_ENV, run_scenes

_spec = importlib.util.spec_from_file_location("bench_predict", Path(__file__).with_name("predict.py"))
bench_predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_predict)


def timed(bundle, scenes, names, out: Path, spec: PredictSpec) -> tuple[float, float]:
    """Wall seconds of the run, and the sum of the scenes' own seconds (inside their task)."""
    start = time.perf_counter()
    reports = run_scenes([bundle], scenes, names, out, spec, PostSpec(), progress=False, resume=False)
    seconds = time.perf_counter() - start
    bad = [r for r in reports if r.status != "done"]
    if bad:
        raise SystemExit(f"{bad[0].name}: {bad[0].status} {bad[0].error}")
    return seconds, sum(r.seconds for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    for key, value in {**RAY_ENV, **LOCAL_RAY_ENV}.items():  # as `eoseg predict --ray` does: no token-auth note
        os.environ.setdefault(key, value)
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    print(f"ray.init(num_cpus={args.cpus}): {time.perf_counter() - started:.1f} s (not counted below)")
    bundle = bench_predict.resnet18_unet(args.window)
    with tempfile.TemporaryDirectory(prefix="eoseg-bench-ray-") as tmp:
        work = Path(tmp)
        scenes = [{"image": bench_predict.make_scene(work / f"s{i:03d}.tif", args.size)} for i in range(args.scenes)]
        names = [f"s{i:03d}" for i in range(args.scenes)]
        base = PredictSpec(device="cpu", window=args.window, overlap=args.window // 4, batch_size=4)
        mpx = args.scenes * args.size**2 / 1e6
        print(f"{args.scenes} scenes of {args.size}x{args.size}, resnet18-Unet (random init), window {args.window}")
        results = {}
        configs = {
            "local, one after another": base,
            "ray, 1 worker x 2 CPUs": base.model_copy(update={"ray": RaySpec(enabled=True, cpus_per_scene=2)}),
            "ray, 2 workers x 1 CPU": base.model_copy(update={"ray": RaySpec(enabled=True, cpus_per_scene=1)}),
        }
        for label, spec in configs.items():
            timed(bundle, scenes[:2], names[:2], work / f"warm-{len(results)}", spec)  # worker start-up
            results[label] = timed(bundle, scenes, names, work / f"out-{len(results)}", spec)
        local = results["local, one after another"][0]
        for label, (seconds, in_tasks) in results.items():
            print(f"{label:26s}: {seconds:7.1f} s  {mpx / seconds:6.3f} Mpx/s  "
                  f"{args.scenes / seconds:5.2f} scenes/s  ratio vs local {local / seconds:.2f}  "
                  f"(scenes' own time summed: {in_tasks:.1f} s)")
        two, one = results["ray, 2 workers x 1 CPU"][0], results["ray, 1 worker x 2 CPUs"][0]
        print(f"2 workers / 1 worker speed-up: {one / two:.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
