"""The training criterion: weighted sums of loss terms per head, built from ``config.loss``."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from torch import Tensor, nn

from eoseg.config.schema import ExperimentConfig, HeadSpec, LossTermSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.losses.targets import head_mode
from eoseg.losses.terms import LOSSES, LossTerm
from eoseg.registry import lookup

_FIXED = {"self", "head", "mode", "ignore_index"}


@dataclass(frozen=True)
class TermKey:
    head: str
    name: str

    def __str__(self) -> str:
        return f"{self.head}/{self.name}"


def build_term(head_name: str, head: HeadSpec, task: TaskSpec, name: str, params: dict) -> LossTerm:
    """One loss term for a head; ConfigError naming ``loss.<head>.<name>`` for a bad name, head or param."""
    option = f"loss.{head_name}.{name}"
    cls = lookup(LOSSES, name, option=f"loss.{head_name}", what="loss")
    mode = head_mode(head, task)
    if mode not in cls.modes:
        usable = sorted(n for n, c in LOSSES.items() if mode in c.modes)
        raise ConfigError(
            f"{option}: {name} does not apply to head {head_name!r} ({mode}: {head.channels} channel(s), "
            f"{head.kind}); it needs a {' or '.join(cls.modes)} head; "
            f"losses for this head: {', '.join(usable)}"
        )
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in _FIXED]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{option}: unknown parameter(s) {', '.join(unknown)}; "
            f"valid: weight, {', '.join(accepted) or '(none)'}"
        )
    try:
        return cls(head, mode, task.ignore_index, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{option}: {exc}") from exc


class Criterion(nn.Module):
    """``criterion(outputs, targets) -> (total, parts)``: the weighted sum of every term of every head.

    ``outputs`` and ``targets`` are keyed by head name; ``parts`` holds each term's unweighted, detached
    value keyed ``"head/name"``.
    """

    def __init__(self, terms: dict[TermKey, tuple[LossTerm, float]]) -> None:
        super().__init__()
        self.keys = list(terms)
        self.terms = nn.ModuleList(term for term, _ in terms.values())
        self.weights = [weight for _, weight in terms.values()]

    @property
    def heads(self) -> list[str]:
        """Heads that have at least one loss term (the targets the task must provide)."""
        return sorted({key.head for key in self.keys})

    def forward(
        self, outputs: dict[str, Tensor], targets: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        missing = [head for head in self.heads if head not in targets or head not in outputs]
        if missing:
            raise KeyError(f"no output or target for head(s) {missing}: the criterion needs {self.heads}")
        total: Tensor | None = None
        parts: dict[str, Tensor] = {}
        for key, term, weight in zip(self.keys, self.terms, self.weights, strict=True):
            value = term(outputs[key.head], targets[key.head])
            parts[str(key)] = value.detach()
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise ValueError("the criterion has no loss terms; configure loss: {head: {name: weight}}")
        return total, parts


def build_criterion(config: ExperimentConfig) -> Criterion:
    """The criterion for ``config.loss`` (``{head: {name: weight or {weight: w, **params}}}``)."""
    terms: dict[TermKey, tuple[LossTerm, float]] = {}
    for head_name, head_terms in config.loss.items():
        head = config.model.heads[head_name]
        for name, spec in head_terms.items():
            weight, params = (
                (spec.weight, dict(spec.model_extra or {}))
                if isinstance(spec, LossTermSpec)
                else (float(spec), {})
            )
            terms[TermKey(head_name, name)] = (build_term(head_name, head, config.task, name, params), weight)
    if not terms:
        raise ConfigError("loss: no loss terms configured; give at least one, e.g. loss: {mask: {bce: 1.0}}")
    return Criterion(terms)
