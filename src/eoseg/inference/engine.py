"""Running batches of windows through one or more models with test-time augmentation, on one device.

For every model and every TTA transform the batch is augmented, run, de-augmented head by head
(dense maps transformed back, direction vectors rotated back) and activated; the results are merged
(mean, or geometric mean) with the ensemble weights. One read of a window feeds every forward pass.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from eoseg.config.schema import HeadSpec, PredictSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.inference.tta import Transform, tta_transforms
from eoseg.models.bundle import ModelBundle
from eoseg.models.heads import activate

LOG_FLOOR = 1e-6
"""Values are clamped to this before the logarithm of a geometric mean."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU (then torch uses ``OMP_NUM_THREADS`` threads, or every
    core it may run on)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"predict.device={name}: CUDA is not available on this machine; use predict.device=cpu"
        )
    if device.type == "cpu":  # OMP_NUM_THREADS when set (Ray tasks set it to their CPU share)
        threads = os.environ.get("OMP_NUM_THREADS", "")
        torch.set_num_threads(
            int(threads)
            if threads.isdigit() and int(threads) > 0
            else len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count()
        )
    return device


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: ``auto`` is fp16 autocast on CUDA and fp32 on the CPU."""
    if precision == "auto":
        precision = "16-mixed" if device.type == "cuda" else "32"
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def auto_batch_size(window: int, device: torch.device) -> int:
    """Windows per batch: about 0.25 Mpx on the CPU (larger batches are not faster there and delay the
    first write), about 0.5 Mpx per GiB of GPU memory (at most 64)."""
    if device.type == "cuda":
        gib = torch.cuda.get_device_properties(device).total_memory / 2**30
        pixels = gib * 2**19
    else:
        pixels = 2**18
    return int(max(1, min(64, pixels // (window * window))))


@dataclass
class BatchOutputs:
    """Merged outputs of a batch of ``B`` windows."""

    dense: dict[str, np.ndarray]  # head -> float32 (B, C, H, W)
    image: dict[str, np.ndarray]  # head -> float32 (B, C): image_class, scalar, direction
    members: list[np.ndarray]  # main head per model, float32 (B, C, H, W); only when voting


@dataclass
class DeviceOutputs:
    """Merged outputs of a batch, dense maps left on the device (for blending there)."""

    dense: dict[str, torch.Tensor]  # head -> float32 (B, C, H, W) on the runner's device
    image: dict[str, np.ndarray]  # head -> float32 (B, C)
    members: list[torch.Tensor]  # main head per model (B, C, H, W) on the device; only when voting


def common_heads(bundles: Sequence[ModelBundle]) -> dict[str, HeadSpec]:
    """Heads that every model has, with the same kind and channel count (first model's order)."""
    first = bundles[0].config.model.heads
    return {
        name: head
        for name, head in first.items()
        if all(
            name in b.config.model.heads
            and b.config.model.heads[name].kind == head.kind
            and b.config.model.heads[name].channels == head.channels
            for b in bundles[1:]
        )
    }


class EnsembleRunner:
    """Runs batches through every model and TTA transform, merging de-augmented, activated outputs."""

    def __init__(
        self,
        bundles: Sequence[ModelBundle],
        spec: PredictSpec,
        device: torch.device,
        recipe_of: Sequence[int],
        vote_head: str | None = None,
    ):
        self.bundles = list(bundles)
        self.device = device
        self.precision = spec.precision
        self.merge = spec.merge
        self.recipe_of = list(recipe_of)
        self.heads = common_heads(self.bundles)
        self.transforms: list[Transform] = tta_transforms(spec.tta, spec.tta_scales)
        self.vote_head = vote_head
        weights = spec.ensemble_weights or [1.0] * len(self.bundles)
        if len(weights) != len(self.bundles) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(
                f"predict.ensemble_weights: give {len(self.bundles)} non-negative weights, "
                f"one per checkpoint (got {spec.ensemble_weights})"
            )
        total = float(sum(weights))
        self.weights = [w / total for w in weights]
        for bundle in self.bundles:
            bundle.model.to(device).eval()

    @property
    def dense_heads(self) -> dict[str, HeadSpec]:
        return {n: h for n, h in self.heads.items() if h.kind == "dense"}

    def __call__(self, inputs: Sequence[np.ndarray | torch.Tensor]) -> BatchOutputs:
        """``inputs[r]``: float32 ``(B, N, H, W)`` of input recipe ``r``; returns merged outputs (numpy)."""
        out = self.run(inputs)
        return BatchOutputs(
            {n: v.cpu().numpy() for n, v in out.dense.items()},
            out.image,
            [m.cpu().numpy() for m in out.members],
        )

    @torch.inference_mode()
    def run(self, inputs: Sequence[np.ndarray | torch.Tensor]) -> DeviceOutputs:
        """Like calling the runner, but dense outputs stay on the device. Host tensors in pinned memory are
        copied without blocking (the copy overlaps the work queued before it)."""
        merged: dict[str, torch.Tensor] = {}
        members: list[torch.Tensor] = []
        on_device: dict[int, torch.Tensor] = {}  # models sharing an input recipe share one copy
        for bundle, recipe, weight in zip(self.bundles, self.recipe_of, self.weights, strict=True):
            if recipe not in on_device:
                x = inputs[recipe]
                x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
                on_device[recipe] = x.to(self.device, non_blocking=True)
            model_out = self._run_model(bundle, on_device[recipe])
            for name, value in model_out.items():
                term = value if weight == 1.0 else weight * value  # a single model: no copy
                merged[name] = term if name not in merged else merged[name] + term
            if self.vote_head is not None:
                members.append(self._finish(self.vote_head, model_out[self.vote_head]).float())
        out = {name: self._finish(name, value).float() for name, value in merged.items()}
        dense = {n: v for n, v in out.items() if self.heads[n].kind == "dense"}
        image = {n: v.cpu().numpy() for n, v in out.items() if self.heads[n].kind != "dense"}
        return DeviceOutputs(dense, image, members)

    def _run_model(self, bundle: ModelBundle, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean over TTA transforms of one model's activated outputs (logs for a geometric mean)."""
        size = (x.shape[-2], x.shape[-1])
        total: dict[str, torch.Tensor] = {}
        task: TaskSpec = bundle.config.task
        for transform in self.transforms:
            with autocast(self.device, self.precision):
                raw = bundle.model(transform.augment(x))
            for name, head in self.heads.items():
                y = raw[name].float()
                if head.kind == "dense":
                    y = transform.deaugment_dense(y, size)
                elif head.kind == "direction":
                    y = transform.deaugment_vector(y)
                y = self._to_merge_space(head, activate(head, task, y))
                if len(self.transforms) > 1:
                    y = y / len(self.transforms)
                total[name] = y if name not in total else total[name] + y
        return total

    def _to_merge_space(self, head: HeadSpec, y: torch.Tensor) -> torch.Tensor:
        if head.kind == "direction":
            return torch.nn.functional.normalize(y, dim=1)
        if self.merge == "gmean":
            return torch.log(y.clamp_min(LOG_FLOOR))
        return y

    def _finish(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Back from the merge space (exp of the mean log for a geometric mean)."""
        if self.merge == "gmean" and self.heads[name].kind != "direction":
            return torch.exp(value)
        return value
