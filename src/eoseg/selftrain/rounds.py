"""``eoseg self-train``: teacher -> pseudo-labels -> student, for N rounds, every round kept, resumable.

Round 0 trains the teacher on the labelled chips (``data.root``) only (``selftrain.teachers`` > 1: that many,
whose averaged predictions make round 1's pseudo-labels); round ``r`` pseudo-labels the
unlabelled scenes with the checkpoint of round ``r - 1`` (``selftrain.checkpoint``: its best or its last;
:func:`eoseg.selftrain.pseudo.pseudo_label`, ``selftrain.pseudo`` rules, ``predict.*`` TTA) and trains a
student on the labelled chips mixed with them (``selftrain.mix``; default one pseudo-labelled batch every 5).
Layout under ``train.out/<name>-selftrain/``::

    runs/round0/, runs/round1/, ...   training runs (checkpoints, metrics.csv, report.html)
    runs/round0-teacher1/, ...        round 0's other teachers (selftrain.teachers > 1)
    pseudo/round1/, ...               pseudo-label outputs of each round (labels/, chips/, summary.json)
    runs/control-after-round<N>/      --control: labelled-only run of the students' steps (no pseudo-labels)
    rounds.json, rounds.csv           one entry per finished round: checkpoint, pseudo chips, val score

``control`` (``eoseg self-train --control``) adds the run that tells whether the unlabelled scenes helped: the
student rounds' configuration (``selftrain.student_*``, the teacher's weights with ``--from-teacher``) trained on
the labelled chips alone for as many optimizer steps as rounds 1 to N took together, listed as round
``control``. A better student score than the teacher's alone does not say that: the extra training steps help too
(``benchmarks/self_training.py`` measures both).

A re-run continues where the last one stopped: finished rounds (listed in ``rounds.json``) are kept, an
interrupted training resumes from its ``last.ckpt``, an interrupted pseudo-labelling from its finished scenes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eoseg.config.loader import config_to_dict, validate_config
from eoseg.config.schema import ExperimentConfig
from eoseg.data.dataset import read_prepared_stats
from eoseg.errors import ConfigError
from eoseg.geo.atomic import write_text_atomic
from eoseg.models.bundle import ModelBundle
from eoseg.models.checkpoint import load_bundle, read_checkpoint
from eoseg.selftrain.pseudo import check_unlabelled, pseudo_label
from eoseg.training.train import TrainResult, train

STATE = "rounds.json"
CONTROL = "control"
"""The ``round`` of the labelled-only control's entry in ``rounds.json`` (``--control``)."""


def selftrain_folder(config: ExperimentConfig) -> Path:
    """``train.out/<name>-selftrain``: where every round is kept."""
    return Path(config.train.out) / f"{config.name}-selftrain"


def round_config(
    config: ExperimentConfig, folder: Path, number: int, pseudo_root: Path | None, init: str | None = None
) -> ExperimentConfig:
    """The training config of round ``number``: its own run folder, mixing with ``pseudo_root`` if given,
    starting from the checkpoint ``init`` if given (else as ``model.init_checkpoint`` says); students (round
    1 on) train ``selftrain.student_epochs`` epochs at ``selftrain.student_lr`` and augment with
    ``selftrain.student_augment``, each when set."""
    raw = config_to_dict(config)
    raw["name"] = f"round{number}"
    raw["train"]["out"] = str(folder / "runs")
    if number > 0 and config.selftrain.student_epochs is not None:
        raw["train"]["epochs"] = config.selftrain.student_epochs
    if number > 0 and config.selftrain.student_augment is not None:
        raw["data"]["augment"] = raw["selftrain"]["student_augment"]
    if number > 0 and config.selftrain.student_lr is not None:
        raw["optim"]["lr"] = config.selftrain.student_lr
    if init is not None:
        raw["model"]["init_checkpoint"] = init
    if pseudo_root is None:
        raw["selftrain"]["mix"] = None
    else:
        raw["selftrain"]["mix"] = {**(raw["selftrain"].get("mix") or {}), "root": str(pseudo_root)}
    return validate_config(raw, f"self-train round {number}")


def control_config(
    config: ExperimentConfig, folder: Path, init: str | None, steps: int, batches_per_epoch: int, name: str
) -> ExperimentConfig:
    """Labelled-only training for ``steps`` optimizer steps (the students' budget), configured as a student
    round (``selftrain.student_epochs``, ``student_augment``, ``student_lr``) without the pseudo-labelled set:
    from the checkpoint ``init`` (the teacher, as students of ``--from-teacher`` start) or, None, from
    ``model.init_checkpoint`` and ``train.seed`` as the teacher starts; ``batches_per_epoch`` labelled batches an
    epoch (``train.max_steps`` stops it at ``steps``; the schedule spans them)."""
    raw = config_to_dict(round_config(config, folder, 1, None, init=init))
    raw["name"] = name
    raw["train"]["epochs"] = math.ceil(steps / max(batches_per_epoch, 1))
    raw["train"]["max_steps"] = steps
    return validate_config(raw, "self-train control")


def teacher_config(config: ExperimentConfig, folder: Path, k: int) -> ExperimentConfig:
    """Round 0's ``k``-th teacher (of ``selftrain.teachers``): the first is ``round0``; the others train as
    ``round0-teacher<k>`` with ``train.seed + k``, so that they differ in init and draw order, not in data."""
    first = round_config(config, folder, 0, None)
    if k == 0:
        return first
    raw = config_to_dict(first)
    raw["name"] = f"round0-teacher{k}"
    raw["train"]["seed"] = config.train.seed + k
    return validate_config(raw, f"self-train teacher {k}")


def labelling_checkpoints(entry: dict[str, Any]) -> list[str]:
    """The checkpoints whose averaged predictions pseudo-label the round after ``entry``: round 0's ensemble of
    teachers (``selftrain.teachers``), or the round's one checkpoint."""
    return list(entry.get("ensemble") or [entry["checkpoint"]])


def best_score(history: Sequence[dict[str, float]], monitor: str, mode: str) -> float | None:
    """The best value of ``monitor`` over the epochs of a run (None when it was never logged)."""
    values = [h[monitor] for h in history if monitor in h and h[monitor] == h[monitor]]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def read_state(folder: Path) -> list[dict[str, Any]]:
    path = folder / STATE
    return json.loads(path.read_text()) if path.is_file() else []


def write_state(folder: Path, rounds: list[dict[str, Any]]) -> None:
    """``rounds.json`` (what a re-run resumes from) and ``rounds.csv`` (the table; a column per key of any entry)."""
    write_text_atomic(folder / STATE, json.dumps(rounds, indent=2))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for r in rounds for k in r)))
    writer.writeheader()
    writer.writerows({k: " ".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in rounds)
    write_text_atomic(folder / "rounds.csv", buffer.getvalue())


def check_before_teacher(config: ExperimentConfig, unlabelled: Sequence[dict[str, Path]]) -> None:
    """Refuse unlabelled scenes that no model of this config could label, before the teacher trains: each
    must be readable and have the images, band counts and dtypes of the labelled chips (``data.root``)."""
    prepared = ModelBundle(model=None, config=config, stats=read_prepared_stats(config.data.root))  # type: ignore[arg-type]
    check_unlabelled(unlabelled, prepared, config.predict.allow_dtype)  # reads the stats only, no model


def _train_round(config: ExperimentConfig, rows: list[dict[str, Any]], progress: bool) -> TrainResult:
    last = Path(config.train.out) / config.name / "checkpoints" / "last.ckpt"
    return train(config, resume=last.is_file(), progress=progress, rounds=rows or None)


def round_checkpoint(result: TrainResult, config: ExperimentConfig) -> Path | None:
    """The checkpoint that stands for a training run under ``selftrain.checkpoint``: ``best`` (by
    ``train.monitor``; the last one when none was saved, e.g. without validation chips) or ``last``."""
    if config.selftrain.checkpoint == "last":
        return result.last_checkpoint
    return result.best_checkpoint or result.last_checkpoint


def _entry(
    number: int, result: TrainResult, config: ExperimentConfig, kept: int = 0, labelled_by: int = 1
) -> dict[str, Any]:
    """One round's row: ``teacher`` names the round that pseudo-labelled it (``round0 ensemble of 3`` when
    ``labelled_by`` > 1 teachers averaged their predictions)."""
    checkpoint = round_checkpoint(result, config)
    score = best_score(result.history, config.train.monitor, config.train.monitor_mode)
    if score is None and checkpoint is not None:
        history = read_checkpoint(checkpoint)["eoseg"].get("history", [])
        score = best_score(history, config.train.monitor, config.train.monitor_mode)
    teacher = f"round{number - 1}" + (f" ensemble of {labelled_by}" if labelled_by > 1 else "") if number else "-"
    return {"round": number, "teacher": teacher, "pseudo_chips": kept,
            "checkpoint": str(checkpoint), config.train.monitor: score}


def last_steps(entry: dict[str, Any]) -> int:
    """The optimizer steps a round's run took (its ``last.ckpt``, beside the checkpoint that stands for it)."""
    return int(read_checkpoint(Path(entry["checkpoint"]).parent / "last.ckpt")["global_step"])


def train_control(
    config: ExperimentConfig, folder: Path, state: list[dict[str, Any]], from_teacher: bool, progress: bool
) -> dict[str, Any]:
    """The labelled-only control of the student rounds in ``state`` (see the module doc): its entry, with the
    ``steps`` it took (those of the students together) and ``matches_rounds``."""
    students = state[1:]
    steps = sum(last_steps(entry) for entry in students)
    per_epoch = last_steps(state[0]) // config.train.epochs  # the teacher's labelled batches an epoch
    init = state[0]["checkpoint"] if from_teacher else None
    control = control_config(config, folder, init, steps, per_epoch, f"{CONTROL}-after-round{len(students)}")
    entry = _entry(0, _train_round(control, state, progress), config)
    return {**entry, "round": CONTROL, "teacher": "- (labelled only)", "steps": steps,
            "matches_rounds": len(students)}


def self_train(
    config: ExperimentConfig,
    unlabelled: Sequence[dict[str, Path]],
    rounds: int,
    progress: bool = True,
    from_teacher: bool = False,
    control: bool = False,
) -> list[dict[str, Any]]:
    """Run (or continue) ``rounds`` self-training rounds after the teacher; return one entry per round (and the
    control's last, with ``control``).

    ``from_teacher``: each student starts from its teacher's weights instead of ``model.init_checkpoint``.
    ``control``: also train the labelled-only control of the students' steps (kept and resumed like a round).
    """
    if rounds < 1:
        raise ConfigError(f"--rounds {rounds}: give at least 1 self-training round")
    if not unlabelled:
        raise ConfigError("eoseg self-train: no unlabelled scene given; pass them with --unlabelled")
    check_before_teacher(config, unlabelled)
    folder = selftrain_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    recorded = read_state(folder)
    controls = [r for r in recorded if r["round"] == CONTROL and r["matches_rounds"] == rounds]
    state = [r for r in recorded if r["round"] != CONTROL and r["round"] <= rounds]
    done = {r["round"] for r in state}
    if 0 not in done:
        results = [_train_round(teacher_config(config, folder, k), [], progress)
                   for k in range(config.selftrain.teachers)]
        entry = _entry(0, results[0], config)
        if len(results) > 1:
            entry["ensemble"] = [str(round_checkpoint(result, config)) for result in results]
        state = [entry]
        write_state(folder, state)
    trained = len(labelling_checkpoints(state[0]))
    if trained != config.selftrain.teachers:
        raise ConfigError(f"selftrain.teachers={config.selftrain.teachers}: {folder / STATE} records a round 0 of "
                          f"{trained} teacher(s); give selftrain.teachers={trained}, or another train.out to start "
                          "over")
    for number in range(1, rounds + 1):
        if number in done:
            continue
        teacher = state[-1]["checkpoint"]
        bundles = [load_bundle(path) for path in labelling_checkpoints(state[-1])]
        labelling = bundles[0].config.model_copy(
            update={"predict": config.predict, "post": config.post, "selftrain": config.selftrain}
        )
        pseudo = pseudo_label(bundles, unlabelled, folder / "pseudo" / f"round{number}", labelling,
                              progress=progress)
        init = teacher if from_teacher else None
        result = _train_round(round_config(config, folder, number, pseudo.root, init), state, progress)
        state.append(_entry(number, result, config, pseudo.kept, len(bundles)))
        write_state(folder, state)
        controls = []  # a control recorded before this round's student matched other student steps
    if control and not controls:
        controls = [train_control(config, folder, state, from_teacher, progress)]
    if controls:
        write_state(folder, [*state, *controls])
    return [*state, *controls]
