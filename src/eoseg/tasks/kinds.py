"""The five tasks: what each learns from the target chips, how its predictions are read, how it is scored.

A task kind (``task.kind``) decides, for every head of ``model.heads``:

- its training target, from the chip of ``head.target`` (default: the head name): class indices for
  softmax heads, 0/1 channels for sigmoid heads, values for regression, image-level labels, vectors;
- the validation post-processing of the main head (the first dense head): its
  :class:`~eoseg.post.postprocess.Postprocessor` (``post.threshold`` by the rule of ``eoseg predict``'s
  mask; gate and minimum area act on whole-scene predictions only); for ``change``, damage classes (argmax
  of the damage head) only where a building is predicted;
- its metrics (``val/<metric>`` overall, ``val/<metric>/<class>`` per class).

Kinds are plain picklable objects: DataLoader workers call :meth:`TaskKind.head_targets` per sample.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from eoseg.config.activation import activation_of
from eoseg.config.schema import ExperimentConfig, HeadSpec
from eoseg.errors import ConfigError
from eoseg.post.postprocess import Postprocessor
from eoseg.registry import lookup
from eoseg.tasks import targets as T
from eoseg.tasks.metrics import MULTILABEL_IGNORE, ClassMetrics, RegressionMetrics, class_names

METRICS = ("iou", "f1", "precision", "recall", "dice")


class TaskKind:
    """Base of the task kinds; subclasses define dense targets, predictions and metrics."""

    kind: ClassVar[str] = ""
    object_classes: ClassVar[bool] = True  # class targets: every class > 0 is the one object class

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.spec = config.task
        self.heads: dict[str, HeadSpec] = dict(config.model.heads)
        self.ignore_index = config.task.ignore_index
        dense = [n for n, h in self.heads.items() if h.kind == "dense"]
        if not dense:
            raise ConfigError(
                f"model.heads: task {self.kind} needs at least one dense head (heads: {list(self.heads)})"
            )
        self.main = dense[0]
        self._post: dict[str, Postprocessor] = {}
        self.soft = frozenset(n for n, t in config.data.targets.items() if t.soft)
        targets = list(config.data.targets)
        for name in self.heads:
            if self.target_of(name) not in targets:
                raise ConfigError(f"model.heads.{name}.target: {self.target_of(name)!r} is not a target of "
                                  f"data.targets ({targets}); set model.heads.{name}.target to one of them")

    # ------------------------------------------------------------------------------------ targets
    def target_of(self, head: str) -> str:
        return self.heads[head].target or head

    def activation(self, head: str) -> str:
        return activation_of(self.heads[head], self.spec)

    @property
    def directions(self) -> list[str]:
        """Targets that are direction fields (rewritten by geometric augmentation)."""
        return sorted({self.target_of(n) for n, h in self.heads.items() if h.kind == "direction"})

    def head_targets(
        self, chips: Mapping[str, np.ndarray], soft: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """``{head: target}`` of one sample from ``{target name: float32 (bands, H, W), NaN = ignore}``.

        Targets named in ``soft`` (default: those with ``data.targets.<name>.soft``) hold probabilities
        and stay probabilities (:meth:`soft_target`).
        """
        soft = self.soft if soft is None else frozenset(soft)
        out: dict[str, np.ndarray] = {}
        for name, head in self.heads.items():
            if self.target_of(name) not in chips:  # e.g. a pseudo-labelled set has only the main target
                continue
            chip, what = chips[self.target_of(name)], f"{self.target_of(name)} (head {name})"
            if self.target_of(name) in soft and head.kind in ("dense", "image_class"):
                out[name] = self.soft_target(name, head, chip, what)
            elif head.kind == "dense":
                out[name] = self.dense_target(name, head, chip, what)
            elif head.kind == "image_class":
                out[name] = self.image_target(name, head, chip, what)
            elif head.kind == "scalar":
                out[name] = T.channel_means(chip, head.channels, what)
            else:
                out[name] = T.mean_direction(chip, what)
        return out

    def dense_target(self, name: str, head: HeadSpec, chip: np.ndarray, what: str) -> np.ndarray:
        if self.activation(name) == "softmax":
            return T.class_index(chip, head.channels, self.ignore_index, what, binary=self.object_classes)
        return self.label_channels(chip, head.channels, what)

    def label_channels(self, chip: np.ndarray, channels: int, what: str) -> np.ndarray:
        """0/1 channels of a sigmoid head."""
        if self.object_classes:
            return T.binary_channels(chip, channels, what)
        return T.multilabel_channels(chip, channels, what)

    def image_target(self, name: str, head: HeadSpec, chip: np.ndarray, what: str) -> np.ndarray:
        if self.activation(name) == "softmax":
            index = T.class_index(chip, head.channels, self.ignore_index, what, binary=self.object_classes)
            return T.largest_class(index, self.ignore_index)
        return T.presence(self.label_channels(chip, head.channels, what))

    def soft_target(self, name: str, head: HeadSpec, chip: np.ndarray, what: str) -> np.ndarray:
        """Soft-label target of a dense or image-level head; probabilities are kept, never thresholded.

        Sigmoid heads: the chip's first bands (``(C, H, W)`` dense, their maximum ``(C,)`` image-level).
        Softmax heads: a 1-band chip is the positive-class probability ``(1, H, W)`` of a 2-channel head
        (the form ``kl`` reads; class losses round it at 0.5), a K-band chip a distribution ``(K, H, W)``;
        an image-level softmax head gets the largest class of the rounded map.
        """
        softmax = self.activation(name) == "softmax"
        bands = 1 if softmax and chip.shape[0] == 1 and head.channels == 2 else head.channels
        probs = T.soft_channels(chip, bands, what)
        if head.kind == "dense":
            return probs
        if softmax:
            index = T.class_index(np.round(probs[:1]), head.channels, self.ignore_index, what, binary=True)
            return T.largest_class(index, self.ignore_index)
        return T.soft_presence(probs)

    @classmethod
    def channel_names(cls, config: ExperimentConfig, name: str) -> list[str]:
        """Names of a dense head's channels, what it learns in each (the band descriptions predict writes).

        Softmax heads: their classes. Sigmoid heads of object classes: the object (the one foreground class),
        then the target's extra channels (e.g. building, boundary, contact); of other tasks: the labels.
        A channel nothing names is ``<head>_<i>`` (a one-channel head: the head's name).
        Reads only the head, ``task``, ``data.classes`` and, where the config has it, the head's target's
        ``extra_channels``: a class method, so predict names bands without building (and checking) the
        task kind; a checkpoint without ``data.targets`` (hand-made, imported) names no extra channels.
        """
        head = config.model.heads[name]
        default = [name] if head.channels == 1 else [f"{name}_{i}" for i in range(head.channels)]
        classes = list(config.data.classes)
        if activation_of(head, config.task) == "softmax":
            named = classes
        elif cls.object_classes:  # T.binary_channels: class > 0, then the chip's extra bands
            target = config.data.targets.get(head.target or name)
            extras = target.extra_channels if target is not None else []
            named = [classes[1], *extras][:head.channels] if len(classes) == 2 else []
        else:  # T.multilabel_channels: one channel per label (a first background class has none)
            named = classes[-head.channels:] if len(classes) in (head.channels, head.channels + 1) else []
        return named if len(named) == head.channels else default

    # ------------------------------------------------------------------------- post-processing
    def postprocessor(self, name: str) -> Postprocessor:
        """The :class:`~eoseg.post.postprocess.Postprocessor` of a dense head (``post`` section, head layout)."""
        if name not in self._post:
            self._post[name] = Postprocessor.for_head(self.config.post, self.heads[name], self.spec)
        return self._post[name]

    def probabilities(self, name: str, logits: Tensor) -> Tensor:
        """The head's probabilities (float32) from its raw output: softmax over channels, else sigmoid."""
        logits = logits.float()
        return logits.softmax(dim=1) if self.activation(name) == "softmax" else torch.sigmoid(logits)

    def class_prediction(self, name: str, logits: Tensor) -> Tensor:
        """``(B, H, W)`` class index by the head's Postprocessor, the rule of ``eoseg predict``'s mask.

        Softmax heads: ``p > post.threshold`` on the foreground channel (binary) or the per-class rule
        (multiclass); sigmoid heads: channel 0 (binary; further channels such as boundaries are extra
        channels, not the object: :func:`~eoseg.post.postprocess.extra_channels`) or the most probable class
        above its threshold (multiclass).
        """
        return self.postprocessor(name).classes(self.probabilities(name, logits))

    def class_truth(self, target: Tensor) -> Tensor:
        """``(B, H, W)`` class index (ignore_index where not labelled) from a head target."""
        if not target.is_floating_point():
            return target
        return torch.nan_to_num(target[:, 0], nan=float(self.ignore_index)).long()

    def num_classes(self, name: str) -> int:
        return self.heads[name].channels if self.activation(name) == "softmax" else 2

    # --------------------------------------------------------------------------------- metrics
    def build_metrics(self) -> nn.ModuleDict:
        names = class_names(self.config.data.classes, self.num_classes(self.main))
        overall = 1 if self.object_classes else None
        return nn.ModuleDict({"main": ClassMetrics(names, "multiclass", self.ignore_index, overall)})

    def update_metrics(
        self, metrics: nn.ModuleDict, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> None:
        pred, truth = self.prediction(outputs), self.truth(targets)
        metrics["main"].update(pred, truth)

    def compute_metrics(self, metrics: nn.ModuleDict) -> dict[str, float]:
        return metrics["main"].compute()

    def metric_names(self) -> list[str]:
        """Overall metric names (without the ``val/`` prefix) that ``train.monitor`` may use."""
        return list(METRICS)

    def prediction(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """The main head's validation prediction (class index, label maps or values)."""
        return self.class_prediction(self.main, outputs[self.main])

    def truth(self, targets: Mapping[str, Tensor]) -> Tensor:
        return self.class_truth(targets[self.main])

    def display(
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(prediction, truth, score)`` per sample for reports: 2-D maps and the sample's IoU (or RMSE)."""
        pred, truth = self.prediction(outputs), self.truth(targets)
        scores = []
        for p, t in zip(pred, truth, strict=True):
            keep = t != self.ignore_index
            positive_p, positive_t = (p > 0) & keep, (t > 0) & keep
            union = (positive_p | positive_t).sum()
            scores.append((positive_p & positive_t).sum() / union if union > 0 else torch.tensor(1.0))
        truth = truth.masked_fill(truth == self.ignore_index, -1)
        return pred, truth, torch.stack(scores).float()


class BinaryTask(TaskKind):
    """Objects vs background (buildings): sigmoid or 2-channel softmax heads; IoU of the object class."""

    kind = "binary"


class MulticlassTask(TaskKind):
    """One class per pixel: softmax heads, class indices; metrics averaged over classes (macro)."""

    kind = "multiclass"
    object_classes = False

    def class_truth(self, target: Tensor) -> Tensor:
        if not target.is_floating_point():
            return target
        labels = torch.nan_to_num(target, nan=0.0)
        index = torch.where(labels.amax(dim=1) > 0, labels.argmax(dim=1) + 1, 0)
        return index.masked_fill(torch.isnan(target[:, 0]), self.ignore_index)

    def num_classes(self, name: str) -> int:
        channels = self.heads[name].channels
        return channels if self.activation(name) == "softmax" else channels + 1


class MultilabelTask(TaskKind):
    """Overlapping labels (clouds): one sigmoid channel per label, thresholds per label; macro metrics."""

    kind = "multilabel"
    object_classes = False

    def dense_target(self, name: str, head: HeadSpec, chip: np.ndarray, what: str) -> np.ndarray:
        return T.multilabel_channels(chip, head.channels, what)

    def build_metrics(self) -> nn.ModuleDict:
        names = class_names(self.config.data.classes, self.heads[self.main].channels, "label")
        return nn.ModuleDict({"main": ClassMetrics(names, "multilabel")})

    def prediction(self, outputs: Mapping[str, Tensor]) -> Tensor:
        return self.postprocessor(self.main).layout(self.probabilities(self.main, outputs[self.main])).long()

    def truth(self, targets: Mapping[str, Tensor]) -> Tensor:
        return torch.nan_to_num(targets[self.main], nan=float(MULTILABEL_IGNORE)).long()

    def display(
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        pred, truth = self.prediction(outputs), self.truth(targets)
        keep = truth != MULTILABEL_IGNORE
        inter = ((pred == 1) & (truth == 1) & keep).flatten(1).sum(1)
        union = (((pred == 1) | (truth == 1)) & keep).flatten(1).sum(1)
        scores = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union, dtype=torch.float))
        return _label_map(pred), _label_map(truth), scores.float()


class ChangeTask(TaskKind):
    """Pre/post pairs (xView2): building localisation plus ordinal damage classes on building pixels.

    The damage head is the dense head whose target is ``task.damage_target`` (values 1..K on buildings,
    0 elsewhere); its target ignores every non-building pixel, so the damage loss counts buildings only.
    Validation scores damage like the xView2 metric: on true building pixels, with the damage predicted
    only where a building is predicted; ``val/score = 0.3 * localisation F1 + 0.7 * damage F1`` (the
    harmonic mean of the per-class F1).
    """

    kind = "change"

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__(config)
        dense = [n for n, h in self.heads.items() if h.kind == "dense"]
        damage = [n for n in dense if self.target_of(n) == self.spec.damage_target]
        located = [n for n in dense if n not in damage]
        if not damage or not located:
            raise ConfigError(
                f"model.heads: the change task needs a localisation head and a damage head learning "
                f"task.damage_target={self.spec.damage_target!r} (heads: "
                f"{ {n: self.target_of(n) for n in self.heads} })")
        self.damage, self.main = damage[0], located[0]

    def dense_target(self, name: str, head: HeadSpec, chip: np.ndarray, what: str) -> np.ndarray:
        if name == self.damage:
            return T.damage_index(chip, head.channels, self.ignore_index, what)
        return super().dense_target(name, head, chip, what)

    @classmethod
    def channel_names(cls, config: ExperimentConfig, name: str) -> list[str]:
        """The damage head's channels are the damage classes (as its metrics name them); the damage head is
        the first dense head learning ``task.damage_target``, as :meth:`__init__` finds it."""
        heads = config.model.heads
        damage = next((n for n, h in heads.items()
                       if h.kind == "dense" and (h.target or n) == config.task.damage_target), None)
        if name != damage:
            return super().channel_names(config, name)
        return class_names(config.data.classes, heads[name].channels, "damage")

    def build_metrics(self) -> nn.ModuleDict:
        metrics = super().build_metrics()
        k = self.heads[self.damage].channels
        names = ["none", *class_names(self.config.data.classes, k, "damage")]
        metrics["damage"] = ClassMetrics(names, "multiclass", self.ignore_index)
        return metrics

    def update_metrics(
        self, metrics: nn.ModuleDict, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> None:
        super().update_metrics(metrics, outputs, targets)
        located = self.prediction(outputs) > 0
        damage = torch.where(located, outputs[self.damage].argmax(dim=1) + 1, 0)
        truth = targets[self.damage]
        metrics["damage"].update(damage, torch.where(truth == self.ignore_index, truth, truth + 1))

    def compute_metrics(self, metrics: nn.ModuleDict) -> dict[str, float]:
        out = super().compute_metrics(metrics)
        damage = metrics["damage"].compute()
        per_class = [v for k, v in damage.items() if k.startswith("f1/") and k != "f1/none"]
        out.update({f"damage_{k}": v for k, v in damage.items() if "/" in k and not k.endswith("/none")})
        out["damage_f1"] = len(per_class) / sum(1.0 / (v + 1e-6) for v in per_class)
        out["score"] = 0.3 * out["f1"] + 0.7 * out["damage_f1"]
        return out

    def metric_names(self) -> list[str]:
        return [*METRICS, "damage_f1", "score"]


class RegressionTask(TaskKind):
    """Dense values (height, flow magnitude) with an ignore value; RMSE, MAE and R² over labelled pixels."""

    kind = "regression"
    object_classes = False

    def dense_target(self, name: str, head: HeadSpec, chip: np.ndarray, what: str) -> np.ndarray:
        return T.regression_channels(chip, head.channels, what)

    @classmethod
    def channel_names(cls, config: ExperimentConfig, name: str) -> list[str]:
        """Values have no class names: ``<head>_<i>`` (a one-channel head: the head's name)."""
        channels = config.model.heads[name].channels
        return [name] if channels == 1 else [f"{name}_{i}" for i in range(channels)]

    def build_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({"main": RegressionMetrics()})

    def prediction(self, outputs: Mapping[str, Tensor]) -> Tensor:
        return outputs[self.main]

    def truth(self, targets: Mapping[str, Tensor]) -> Tensor:
        return targets[self.main]

    def metric_names(self) -> list[str]:
        return ["rmse", "mae", "r2"]

    def display(
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        pred, truth = outputs[self.main][:, 0].float(), targets[self.main][:, 0]
        err = torch.where(torch.isfinite(truth), (pred - truth) ** 2, torch.zeros_like(pred))
        count = torch.isfinite(truth).flatten(1).sum(1).clamp(min=1)
        return pred, truth, (err.flatten(1).sum(1) / count).sqrt()


def _label_map(labels: Tensor) -> Tensor:
    """``(B, K, H, W)`` 0/1 (-1 ignore) -> ``(B, H, W)``: the highest positive label + 1, 0 for none."""
    k = torch.arange(1, labels.shape[1] + 1, device=labels.device).view(1, -1, 1, 1)
    return (labels.clamp(min=0) * k).amax(dim=1)


TASKS: dict[str, type[TaskKind]] = {
    cls.kind: cls for cls in (BinaryTask, MulticlassTask, MultilabelTask, ChangeTask, RegressionTask)
}


def task_kind_class(config: ExperimentConfig) -> type[TaskKind]:
    """The class of ``config.task.kind``'s task kind (not built: nothing checks the heads against the targets)."""
    return lookup(TASKS, config.task.kind, option="task.kind", what="task kind")


def build_task_kind(config: ExperimentConfig) -> TaskKind:
    """The task kind of ``config.task.kind``."""
    return task_kind_class(config)(config)


def channel_names(config: ExperimentConfig, head: str) -> list[str]:
    """What each channel of the dense ``head`` learns (:meth:`TaskKind.channel_names`), from the config alone:
    predict's band descriptions of a value head, for any checkpoint (with or without ``data.targets``)."""
    return task_kind_class(config).channel_names(config, head)
