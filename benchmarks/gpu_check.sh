#!/usr/bin/env bash
# GPU check for issue 11 (run it when a GPU is lent; nothing here runs in CI):
#  1. a few training steps through the user's path (`eoseg demo --quick`) with train.precision=16-mixed
#     and with bf16-mixed: the run must finish and report its scores;
#  2. predict a 16,384 x 16,384 3-band scene on CUDA with a random resnet18-Unet and with the 3x3-conv
#     model (eoseg's pipeline cost), printing Mpx/s, peak GPU memory (torch) and the GPU utilisation
#     sampled by nvidia-smi every 200 ms during each prediction.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR] [SIZE]     (defaults: ${OUT:-/tmp/eoseg-gpu-check}, 16384)
set -euo pipefail
OUT_DIR=${1:-${OUT:-/tmp/eoseg-gpu-check}}
SIZE=${2:-16384}
mkdir -p "$OUT_DIR"
cd "$(dirname "$0")/.."
uv sync --locked --quiet
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/gpu.txt"

for precision in 16-mixed bf16-mixed; do
  start=$(date +%s)
  uv run eoseg demo --quick --out "$OUT_DIR/demo-$precision" -q train.precision=$precision \
    > "$OUT_DIR/demo-$precision.log" 2>&1 && status=ok || status=FAILED
  echo "train $precision: $status in $(( $(date +%s) - start )) s (log: $OUT_DIR/demo-$precision.log)"
  tail -n 12 "$OUT_DIR/demo-$precision.log"
done

uv run python - "$OUT_DIR" "$SIZE" <<'PY'
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

out, size = Path(sys.argv[1]), int(sys.argv[2])
spec = importlib.util.spec_from_file_location("bench_predict", "benchmarks/predict.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
from eoseg.config.schema import PostSpec, PredictSpec  # noqa: E402
from eoseg.inference.predictor import predict_scene  # noqa: E402

assert torch.cuda.is_available(), "no CUDA device"
scene = out / f"scene{size}.tif"
if not scene.exists():
    t = time.perf_counter()
    bench.make_scene(scene, size)
    print(f"scene {size}x{size} written in {time.perf_counter() - t:.0f} s")


class Conv3x3(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return {"mask": self.conv(x)}


models = {"resnet18-Unet": bench.resnet18_unet(512), "3x3-conv": bench.bundle_of(Conv3x3(), 512)}
for name, bundle in models.items():
    for precision in ("16-mixed", "bf16-mixed"):
        torch.cuda.reset_peak_memory_stats()
        smi_log = out / f"smi-{name}-{precision}.csv"
        with open(smi_log, "w") as log:
            smi = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "200"], stdout=log)
            t = time.perf_counter()
            predict_scene([bundle], {"image": scene}, out / f"pred-{name}-{precision}",
                          PredictSpec(device="cuda", window=512, precision=precision), PostSpec(), progress=False)
            seconds = time.perf_counter() - t
            smi.terminate()
            smi.wait()
        samples = [line.split(",") for line in smi_log.read_text().splitlines() if line.strip()]
        util = [float(u) for u, _ in samples] or [float("nan")]
        print(f"predict {name:13s} {precision:10s}: {size * size / 1e6 / seconds:8.1f} Mpx/s  {seconds:6.1f} s  "
              f"peak torch GPU memory {torch.cuda.max_memory_allocated() / 2**30:5.2f} GiB  "
              f"GPU utilisation mean {sum(util) / len(util):4.0f} % (max {max(util):.0f} %, {len(util)} samples)")
PY
