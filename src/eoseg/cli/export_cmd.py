"""``eoseg export``: a checkpoint as an ONNX model that carries its eoseg metadata (for deployment)."""

from __future__ import annotations

from pathlib import Path

import typer

from eoseg.errors import InputError, require_models
from eoseg.progress import console


def export(
    checkpoint: Path = typer.Argument(..., metavar="CKPT", help="A .ckpt written by `eoseg train`."),
    out: Path = typer.Option(..., "--out", "-o", help="The ONNX file to write (e.g. model.onnx)."),
    opset: int = typer.Option(17, "--opset", min=13, help="ONNX opset version."),
) -> None:
    """Export a checkpoint to ONNX (dynamic batch size; band math, statistics, heads, classes and window
    inside the file), ready for `eoseg predict model.onnx scene.tif` on onnxruntime.

    Example: eoseg export runs/buildings/best.ckpt --out buildings.onnx
    """
    if out.resolve() == checkpoint.resolve():
        raise InputError(f"--out {out}: is the checkpoint itself; give a new file such as {checkpoint.stem}.onnx")
    if out.suffix.lower() != ".onnx":
        raise InputError(f"--out {out}: an ONNX model file must end in .onnx; e.g. --out {out.with_suffix('.onnx')}")
    require_models([checkpoint])  # before torch and onnx load
    from eoseg.models.checkpoint import load_bundle
    from eoseg.models.onnx import export_onnx

    bundle = load_bundle(checkpoint)
    diff = export_onnx(bundle, out, opset=opset)
    console.print(f"wrote {out} (onnxruntime vs torch on a test batch: max |difference| {diff:.2e})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
