"""ONNX export of a model bundle, and ONNX models run by onnxruntime that behave like eoseg models.

``export_onnx`` writes the network with a dynamic batch size (and dynamic height and width, so that
other windows and TTA scales work) and puts everything a prediction needs into the file's
``metadata_props`` under the key ``eoseg`` (JSON): the resolved config (window, blending, post), the
prepared statistics (input band math, band names per image, nodata, channel means/stds), the class
names, the heads in output order and the model's stride. ``load_onnx_bundle`` gives back a
:class:`~eoseg.models.bundle.ModelBundle` whose ``model`` is an :class:`OnnxModel`: called on a batch
tensor it returns the same ``{head: tensor}`` dict as the torch model, so TTA, ensembles (mixed with
torch checkpoints) and every output of ``eoseg predict`` work unchanged.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from eoseg.config.loader import config_from_dict, config_to_dict
from eoseg.errors import InputError, require_models
from eoseg.geo.atomic import atomic_path
from eoseg.models.bundle import ModelBundle

METADATA_KEY = "eoseg"
FORMAT_VERSION = 1
INPUT_NAME = "input"
OPSET = 17


class _TupleOutputs(nn.Module):
    """The model with its ``{head: tensor}`` outputs as a tuple in head order (what ONNX can export)."""

    def __init__(self, model: nn.Module, heads: list[str]) -> None:
        super().__init__()
        self.model = model
        self.heads = heads

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        return tuple(out[name] for name in self.heads)


def onnx_metadata(bundle: ModelBundle) -> dict[str, Any]:
    """The ``eoseg`` metadata entry of an exported model (plain JSON data)."""
    heads = bundle.config.model.heads
    return {
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(bundle.config),
        "stats": bundle.stats,
        "classes": bundle.classes,
        "inputs": bundle.inputs,
        "bands": bundle.bands,
        "window": bundle.chip_size,
        "heads": {name: head.model_dump(mode="json") for name, head in heads.items()},
        "outputs": list(heads),
        "output_stride": int(getattr(bundle.model, "output_stride", 1)),
        "source": Path(bundle.source).name if bundle.source else "",
    }


def export_onnx(bundle: ModelBundle, out: str | os.PathLike[str], opset: int = OPSET) -> float:
    """Write ``bundle`` as an ONNX model with its eoseg metadata to ``out`` (atomically).

    Returns the largest absolute difference between onnxruntime and torch on a random batch of two
    windows (a self-check of the export).
    """
    import onnx

    heads = list(bundle.config.model.heads)
    window = bundle.chip_size
    stride = int(getattr(bundle.model, "output_stride", 1))
    window = max(stride, window // stride * stride)
    channels = len(bundle.inputs)  # siamese pairs: both images' channels, as in the checkpoint
    wrapper = _TupleOutputs(bundle.model, heads).eval()  # export restores the wrapper's mode onto the model
    sample = torch.zeros(1, channels, window, window)
    axes: dict[str, dict[int, str]] = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    for name, head in bundle.config.model.heads.items():
        axes[name] = {0: "batch", 2: "height", 3: "width"} if head.kind == "dense" else {0: "batch"}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the shape checks in forward are traced as constants: they only guard, they compute nothing
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter handles smp's models
        torch.onnx.export(
            wrapper,
            (sample,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=heads,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(onnx_metadata(bundle))
    proto.producer_name = "eoseg"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    x = torch.randn(2, channels, window, window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = bundle.model(x)
    got = OnnxModel(data, heads, stride)(x)
    diff = max(float((got[n] - expected[n].float()).abs().max()) for n in heads)

    out = Path(out)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(data)
    return diff


class OnnxModel(nn.Module):
    """An ONNX model run by onnxruntime on the CPU, called like an eoseg model: ``x -> {head: tensor}``.

    Inputs on another device are copied to the host and outputs back. Pickles as the model bytes (so a
    bundle can travel to Ray workers).
    """

    def __init__(
        self, data: bytes, heads: list[str], output_stride: int = 1, threads: int = 0, session: Any = None
    ) -> None:
        super().__init__()
        self.heads = list(heads)
        self.output_stride = int(output_stride)
        self.threads = threads
        self._data = data
        self._session = session if session is not None else _session(data, threads)
        self._input = self._session.get_inputs()[0].name

    @property
    def in_channels(self) -> int | None:
        dim = self._session.get_inputs()[0].shape[1]
        return dim if isinstance(dim, int) else None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        outputs = self._session.run(self.heads, {self._input: array})
        return {name: torch.from_numpy(value).to(x.device) for name, value in zip(self.heads, outputs, strict=True)}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_session")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = _session(self._data, self.threads)


def _session(data: bytes, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default (the physical cores)
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def load_onnx_bundle(path: str | os.PathLike[str], threads: int = 0) -> ModelBundle:
    """An exported model with its config and statistics; :class:`InputError` for a missing file, a file
    that is not ONNX, or an ONNX model without eoseg metadata."""
    path = Path(path)
    require_models([path])
    data = path.read_bytes()
    try:
        session = _session(data, threads)
    except Exception as exc:  # onnxruntime raises its own exception types for foreign bytes
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable ONNX model ({first}); export one with `eoseg export`") from exc
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise InputError(
            f"{path}: ONNX model has no eoseg metadata (band math, statistics, classes); "
            "export it from an eoseg checkpoint with `eoseg export CKPT --out model.onnx`"
        )
    try:
        entry = json.loads(meta[METADATA_KEY])
        config = config_from_dict(entry["config"])
        heads = list(entry["outputs"])
        stats = entry["stats"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: the eoseg metadata of this ONNX model is damaged ({exc}); export it again with `eoseg export`"
        ) from exc
    model = OnnxModel(data, heads, int(entry.get("output_stride", 1)), threads, session)
    expected = len(stats["inputs"])
    if model.in_channels is not None and model.in_channels != expected:
        raise InputError(
            f"{path}: the ONNX network takes {model.in_channels} input channels but its metadata lists "
            f"{expected} ({', '.join(stats['inputs'])}); export it again with `eoseg export`"
        )
    extra = {"format": "onnx", "source_checkpoint": entry.get("source", "")}
    return ModelBundle(model.eval(), config, stats, source=str(path), extra=extra)
