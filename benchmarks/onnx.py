"""Benchmark: onnxruntime against torch on the CPU, for the bare network and for a whole-scene prediction.

Exports a random-init resnet18-Unet bundle with ``eoseg.models.onnx.export_onnx``, then times
(a) the forward pass alone on the same batches (torch in inference mode vs an onnxruntime session) and
(b) ``predict_scene`` over a generated GeoTIFF with the torch bundle and with the ONNX bundle (same windows,
same batch size, same outputs), and prints the ratios onnxruntime / torch in the same run.

Usage: uv run python benchmarks/onnx.py [--size 2048 --window 512 --batch 4 --repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # this file must not shadow `onnx`

import torch  # noqa: E402

from eoseg.config.schema import ModelSpec, PostSpec, PredictSpec, TaskSpec  # noqa: E402
from eoseg.inference.predictor import predict_scene  # noqa: E402
from eoseg.models.factory import build_model  # noqa: E402
from eoseg.models.onnx import export_onnx, load_onnx_bundle  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_predict", HERE / "predict.py")
bench_predict = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_predict)
bundle_of, make_scene = bench_predict.bundle_of, bench_predict.make_scene


def forward_seconds(model: torch.nn.Module, batches: int, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(batches):
            model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="scene size for (b)")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8, help="batches timed in (a)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each, best kept")
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = ModelSpec(arch="Unet", encoder="resnet18")
    torch_bundle = bundle_of(build_model(spec, TaskSpec(), 3), args.window, spec)
    with tempfile.TemporaryDirectory(prefix="eoseg-bench-onnx-") as tmp:
        work = Path(tmp)
        diff = export_onnx(torch_bundle, work / "model.onnx")
        onnx_bundle = load_onnx_bundle(work / "model.onnx")
        print(
            f"resnet18-Unet (random init), window {args.window}, batch {args.batch}, "
            f"torch threads {torch.get_num_threads()}, export self-check max |diff| {diff:.1e}"
        )
        x = torch.randn(args.batch, 3, args.window, args.window)
        mpx = args.batches * args.batch * args.window**2 / 1e6
        t_torch, t_onnx = [], []
        for _ in range(args.repeats):
            t_torch.append(forward_seconds(torch_bundle.model, args.batches, x))
            t_onnx.append(forward_seconds(onnx_bundle.model, args.batches, x))
        a, b = min(t_torch), min(t_onnx)
        print(f"(a) forward torch      : {mpx / a:7.3f} Mpx/s  ({args.batches} batches, best of {args.repeats})")
        print(f"    forward onnxruntime: {mpx / b:7.3f} Mpx/s  ratio onnxruntime/torch = {a / b:.2f}")

        scene = make_scene(work / "scene.tif", args.size)
        predict = PredictSpec(device="cpu", window=args.window, batch_size=args.batch)
        p_torch, p_onnx = [], []
        for _ in range(args.repeats):
            for bundle, times, name in ((torch_bundle, p_torch, "torch"), (onnx_bundle, p_onnx, "onnx")):
                start = time.perf_counter()
                predict_scene([bundle], {"image": scene}, work / name, predict, PostSpec(), progress=False)
                times.append(time.perf_counter() - start)
        a, b = min(p_torch), min(p_onnx)
        scene_mpx = args.size**2 / 1e6
        print(f"(b) predict {args.size}x{args.size} torch      : {scene_mpx / a:7.3f} Mpx/s")
        print(f"    predict {args.size}x{args.size} onnxruntime: {scene_mpx / b:7.3f} Mpx/s  ratio = {a / b:.2f}")


if __name__ == "__main__":
    main()
