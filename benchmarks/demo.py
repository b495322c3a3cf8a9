"""The full `eoseg demo` on this machine: held-out metrics against the targets, and where the time goes.

Prints pixel IoU / F1 and object F1 on the held-out scene, wall and CPU seconds per step, and the ratio
of the whole pipeline to its training step (the baseline measured in the same run): what generating,
preparing, predicting with TTA, vectorizing and evaluating add on top of training.

    uv run python benchmarks/demo.py [--quick] [--seed N] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from eoseg.demo.run import TARGETS, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="demo folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="eoseg-demo-")
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_demo(out, quick=args.quick, seed=args.seed, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"held-out {result.metrics['scene']}: pixel IoU {result.pixel_iou:.3f} (target {TARGETS['pixel_iou']}), "
          f"pixel F1 {result.pixel_f1:.3f}, object F1 {result.object_f1:.3f} (target {TARGETS['object_f1']})")
    for step, t in result.timings.items():
        print(f"  {step:<10} wall {t['wall_s']:7.1f} s   cpu {t['cpu_s']:7.1f} s")
    train = result.timings["train"]
    print(f"total wall {wall:.1f} s, cpu {cpu:.1f} s on {os.cpu_count()} cores "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    print(f"ratio whole pipeline / training: wall {wall / train['wall_s']:.2f}, cpu {cpu / train['cpu_s']:.2f}")
    print(f"outputs in {result.out_dir}")


if __name__ == "__main__":
    main()
