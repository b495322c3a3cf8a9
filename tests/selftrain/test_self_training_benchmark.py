"""benchmarks/self_training.py: which --set keys --reuse must match, and the gain statistic over seeds."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "self_training.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("self_training_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def args(**changes) -> argparse.Namespace:
    base = {"size": 384, "labelled": 3, "epochs": 24, "augment": "colour", "set": [], "checkpoint": "last",
            "teachers": 1}
    return argparse.Namespace(**{**base, **changes})


def test_student_keys_leave_the_teacher_record_alone(bench):
    student = ["selftrain.pseudo.low=0.1", "selftrain.mix.every=3", "selftrain.mix={every: 2}",
               "selftrain.student_augment=[]", "predict.tta=none", "post.min_area=4", "selftrain.student_lr=1e-4"]
    teacher = ["train.batch_size=8", "model.arch_params.encoder_depth=4", "selftrain.negatives.share=0.2",
               "selftrain.checkpoint=best", "data.chips.size=32", "selftrain.pseudo_x=1", "postx.a=1"]
    assert bench.teacher_overrides(student + teacher) == teacher
    # the record of an earlier run without --set (as /tmp/st8/teachers/seed0/teacher.json) still matches
    assert bench.teacher_record(args(set=student), 0) == bench.teacher_record(args(), 0)
    assert bench.teacher_record(args(set=student + ["train.lr=1"]), 0)["set"] == ["train.lr=1"]
    assert bench.teacher_record(args(teachers=3), 0)["teachers"] == 3  # an ensemble of teachers is another round 0


def test_reuse_refuses_a_teacher_key_and_writes_nothing(bench, tmp_path):
    earlier = tmp_path / "old" / "seed0"
    earlier.mkdir(parents=True)
    (earlier / bench.TEACHER).write_text(json.dumps(bench.teacher_record(args(), 0)))
    folder = tmp_path / "new" / "runs" / "demo-selftrain"
    with pytest.raises(SystemExit, match=r"records another teacher .*'set': \['data.chips.size=32'\]"):
        bench.reuse_teacher(earlier, folder, bench.teacher_record(args(set=["data.chips.size=32"]), 0))
    assert not folder.exists()
    # a student-only key gets past the record check (then finds no finished teacher in this fake run)
    with pytest.raises(SystemExit, match="no finished teacher"):
        bench.reuse_teacher(earlier, folder, bench.teacher_record(args(set=["selftrain.pseudo.high=0.9"]), 0))
    assert not folder.exists()


def test_gain_line_mean_standard_error_and_count(bench):
    # mean 0.01; sample sd sqrt((0 + 0.02**2 + 0.02**2) / 2) = 0.02; se 0.02 / sqrt(3) = 0.01155
    assert bench.gain_line("IoU", [0.01, 0.03, -0.01]) == "gain IoU +0.0100 +- 0.0115 (se), 2/3 seeds > 0"
    assert bench.gain_line("object F1", [-0.002]) == "gain object F1 -0.0020 (1 seed: no se), 0/1 seeds > 0"
