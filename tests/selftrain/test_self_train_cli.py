"""The user's path through the CLI: prepare -> self-train (interrupted, resumed) -> pseudo-label, mine-negatives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fixtures.synthetic_scenes import buildings_scene, gradient_image, write_raster

from eoseg.cli import main
from eoseg.selftrain import rounds as rounds_module

torch.set_num_threads(1)


def tiny_yaml(tmp_path: Path) -> Path:
    scenes = []
    for k in range(2):
        image, labels = buildings_scene(tmp_path / f"labelled{k}", size=64)
        scenes.append({"id": f"lab{k}", "images": {"image": str(image)}, "targets": {"mask": str(labels)}})
    raw = {
        "name": "tiny",
        "data": {"root": str(tmp_path / "chips"), "scenes": scenes, "targets": {"mask": {"kind": "vector"}},
                 "chips": {"size": 32, "overlap": 0}, "folds": 2},
        "model": {"arch": "Unet", "encoder": "resnet18",
                  "arch_params": {"encoder_depth": 3, "decoder_channels": [16, 16, 8]},
                  "heads": {"mask": {"channels": 1}}},
        "loss": {"mask": {"bce": 1.0}},
        "optim": {"lr": 1e-2},
        "train": {"out": str(tmp_path / "runs"), "epochs": 1, "batch_size": 2, "num_workers": 0,
                  "accelerator": "cpu", "devices": 1, "tensorboard": False, "limit_train_batches": 2},
        "predict": {"window": 64, "device": "cpu", "workers": 1},
        "selftrain": {"mix": {"every": 1, "loss": {"mask": {"kl": 1.0}}}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cli(*args: str) -> int:
    """Run ``eoseg ARGS``; the exit status."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_self_train_resumes_and_the_commands_run_on_its_checkpoints(tmp_path, monkeypatch, capsys) -> None:
    config = tiny_yaml(tmp_path)
    assert cli("prepare", str(config), "--quiet") == 0
    unlabelled, _ = buildings_scene(tmp_path / "unlabelled", size=64)
    folder = tmp_path / "runs" / "tiny-selftrain"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rounds_module, "pseudo_label", interrupted)
    assert cli("self-train", str(config), "--unlabelled", str(unlabelled), "--rounds", "1", "-q") == 130
    teacher = folder / "runs" / "round0" / "checkpoints" / "best.ckpt"
    stamp = sha(teacher)
    assert [r["round"] for r in json.loads((folder / "rounds.json").read_text())] == [0]

    monkeypatch.undo()
    assert cli("self-train", str(config), "--unlabelled", str(unlabelled), "--rounds", "1", "-q") == 0
    out = capsys.readouterr().err  # the console writes to stderr
    assert "eoseg self-train" in out and "round0" in out and "val/iou" in out
    state = json.loads((folder / "rounds.json").read_text())
    assert [r["round"] for r in state] == [0, 1] and sha(teacher) == stamp  # the teacher was not retrained
    assert state[1]["pseudo_chips"] == 4 and state[1]["teacher"] == "round0"
    assert all(0.0 <= r["val/iou"] <= 1.0 for r in state)
    assert "Self-training rounds" in (folder / "runs" / "round1" / "report.html").read_text()
    assert (folder / "pseudo" / "round1" / "labels" / "scene.soft.tif").is_file()
    assert pd.read_csv(folder / "rounds.csv")["round"].tolist() == [0, 1]

    # an interrupted student (its round not recorded) resumes from its last checkpoint, nothing retrained
    student = Path(state[1]["checkpoint"])
    student_stamp = sha(student)
    (folder / "rounds.json").write_text(json.dumps(state[:1]))
    assert cli("self-train", str(config), "--unlabelled", str(unlabelled), "--rounds", "1", "-q") == 0
    again = json.loads((folder / "rounds.json").read_text())
    assert again[1]["checkpoint"] == state[1]["checkpoint"] and sha(student) == student_stamp
    assert again[1]["val/iou"] == pytest.approx(state[1]["val/iou"])

    # the round checkpoints feed the other self-training commands
    assert cli("pseudo-label", str(teacher), str(unlabelled), "--out", str(tmp_path / "pl"), "-q",
               "selftrain.pseudo.rule=hard") == 0
    summary = json.loads((tmp_path / "pl" / "summary.json").read_text())
    assert summary["rule"]["rule"] == "hard" and summary["chips"] == 4
    assert cli("mine-negatives", str(teacher), "--unlabelled", str(tmp_path / "pl" / "chips"), "--out",
               str(tmp_path / "neg.parquet"), "selftrain.negatives.empty_below=1.0") == 0
    negatives = pd.read_parquet(tmp_path / "neg.parquet")
    # every kept chip qualifies unless the teacher saturates a pixel at p = 1.0 (not below empty_below=1.0),
    # which depends on its training trajectory (the draw order)
    assert 0 < len(negatives) <= summary["kept_chips"] and (negatives["reason"] == "empty").all()

    # unlabelled scenes whose bands do not match the checkpoint: one line, exit 2, nothing written
    one_band = write_raster(tmp_path / "gray.tif", gradient_image(64, 64, bands=1))
    assert cli("pseudo-label", str(teacher), str(one_band), "--out", str(tmp_path / "pl2"), "-q") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "gray.tif: scene has 1 band(s) but the model expects 3 for image 'image'" in err
    assert not (tmp_path / "pl2").exists()
    assert np.isfinite(state[0]["val/iou"])


def test_students_train_selftrain_student_epochs_and_lr_and_the_teacher_train_epochs(tmp_path) -> None:
    from eoseg.config.loader import load_config

    config = load_config("demo", ["train.epochs=24", "selftrain.student_epochs=6", "selftrain.mix.share=0.5",
                                  "selftrain.student_lr=3e-4"])
    folder = tmp_path / "demo-selftrain"
    teacher = rounds_module.round_config(config, folder, 0, None)
    student = rounds_module.round_config(config, folder, 1, tmp_path / "pseudo", init="teacher.ckpt")
    assert (teacher.train.epochs, teacher.selftrain.mix, teacher.optim.lr) == (24, None, 3e-3)
    assert student.train.epochs == 6 and student.model.init_checkpoint == Path("teacher.ckpt")
    assert student.optim.lr == 3e-4  # the student fine-tunes its teacher at its own rate
    assert student.selftrain.mix.root == tmp_path / "pseudo" and student.selftrain.mix.share == 0.5
    unset = rounds_module.round_config(load_config("demo", ["train.epochs=3"]), folder, 2, tmp_path / "pseudo")
    assert (unset.train.epochs, unset.optim.lr) == (3, 3e-3)  # unset: every round trains train.epochs at optim.lr
    assert [a.name for a in unset.data.augment] == ["HorizontalFlip", "VerticalFlip", "RandomRotate90"]


def test_noisy_students_augment_with_selftrain_student_augment_and_the_teacher_with_data_augment(tmp_path) -> None:
    from eoseg.config.loader import load_config

    noisy = "selftrain.student_augment=[{name: HorizontalFlip}, {name: HueSaturationValue, p: 0.7}]"
    config = load_config("demo", [noisy])
    folder = tmp_path / "demo-selftrain"
    teacher = rounds_module.round_config(config, folder, 0, None)
    student = rounds_module.round_config(config, folder, 1, tmp_path / "pseudo", init="teacher.ckpt")
    assert [a.name for a in teacher.data.augment] == ["HorizontalFlip", "VerticalFlip", "RandomRotate90"]
    assert [(a.name, a.p) for a in student.data.augment] == [("HorizontalFlip", 0.5), ("HueSaturationValue", 0.7)]


def listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its hash."""
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_self_train_refuses_unfit_unlabelled_scenes_before_the_teacher_trains(tmp_path, monkeypatch, capsys) -> None:
    config = tiny_yaml(tmp_path)
    assert cli("prepare", str(config), "--quiet") == 0
    good, _ = buildings_scene(tmp_path / "unlabelled", size=64)
    bad = tmp_path / "bad"
    bad.mkdir()
    one_band = write_raster(bad / "gray.tif", gradient_image(64, 64, bands=1))
    wide = write_raster(bad / "wide.tif", gradient_image(64, 64, dtype="uint16"))
    text = bad / "notes.tif"
    text.write_text("not a raster")

    def no_training(*args, **kwargs):
        raise AssertionError("the teacher trained before the unlabelled scenes were checked")

    monkeypatch.setattr(rounds_module, "train", no_training)
    before = listing(tmp_path)
    cases = {
        one_band: f"{one_band}: scene has 1 band(s) but the model expects 3 for image 'image' (image_1, image_2, "
                  "image_3); give a scene with the bands the model was trained on",
        wide: f"{wide}: scene is uint16 but the model was trained on uint8 images",
        text: f"{text}: not a readable raster",
        bad / "missing.tif": f"{bad / 'missing.tif'} (argument SCENE): raster file does not exist; check the path",
    }
    given = [(["--unlabelled", str(good), str(scene)], message) for scene, message in cases.items()]
    given.append((["--unlabelled", str(bad / "gone.tif"), str(good)],
                  f"{bad / 'gone.tif'} (--unlabelled): raster file does not exist; check the path"))
    for scenes, message in given:
        # the fitting scene first: the check looks at every scene, not only the first
        assert cli("self-train", str(config), *scenes, "--rounds", "1", "-q") == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), err
        assert listing(tmp_path) == before  # nothing written: no self-train folder, chips untouched
    assert not (tmp_path / "runs").exists()



@pytest.mark.parametrize(("choice", "best_saved", "expected"), [
    ("best", True, "best"), ("best", False, "last"), ("last", True, "last"),
])
def test_selftrain_checkpoint_is_what_each_round_hands_on(tmp_path, monkeypatch, choice, best_saved, expected) -> None:
    from types import SimpleNamespace

    from eoseg.config.loader import load_config
    from eoseg.training.train import TrainResult

    config = load_config("demo", [f"train.out={tmp_path}", f"selftrain.checkpoint={choice}"])
    started_from = []

    def fake_train(round_config, resume, progress, rounds):  # a finished run with both checkpoints
        started_from.append(round_config.model.init_checkpoint)
        folder = Path(round_config.train.out) / round_config.name / "checkpoints"
        folder.mkdir(parents=True)
        for name in ("best", "last"):
            (folder / f"{name}.ckpt").write_text(name)
        return TrainResult(folder.parent, folder / "best.ckpt" if best_saved else None, folder / "last.ckpt",
                           "val/iou", 0.5, 1, 1, [{"val/iou": 0.5}])

    labelled_by = []

    def fake_pseudo_label(bundles, scenes, out, labelling, progress):
        labelled_by.append(bundles[0].path)
        return SimpleNamespace(root=out / "chips", kept=3)

    monkeypatch.setattr(rounds_module, "check_before_teacher", lambda *args: None)
    monkeypatch.setattr(rounds_module, "train", fake_train)
    monkeypatch.setattr(rounds_module, "load_bundle", lambda path: SimpleNamespace(path=Path(path), config=config))
    monkeypatch.setattr(rounds_module, "pseudo_label", fake_pseudo_label)
    state = rounds_module.self_train(config, [{"image": tmp_path / "b.tif"}], 2, progress=False, from_teacher=True)
    runs = tmp_path / "demo-selftrain" / "runs"
    chosen = [runs / f"round{k}" / "checkpoints" / f"{expected}.ckpt" for k in range(3)]
    assert [Path(r["checkpoint"]) for r in state] == chosen
    assert labelled_by == chosen[:2] and started_from[1:] == chosen[:2]  # it pseudo-labels and starts the student


def test_selftrain_teachers_trains_an_ensemble_that_pseudo_labels_round_one(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    from eoseg.config.loader import load_config
    from eoseg.errors import ConfigError
    from eoseg.training.train import TrainResult

    config = load_config("demo", [f"train.out={tmp_path}", "selftrain.teachers=3", "train.seed=7"])
    trained = []

    def fake_train(round_config, resume, progress, rounds):
        trained.append((round_config.name, round_config.train.seed, round_config.model.init_checkpoint))
        folder = Path(round_config.train.out) / round_config.name / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "best.ckpt").write_text(round_config.name)
        return TrainResult(folder.parent, folder / "best.ckpt", folder / "best.ckpt", "val/iou", 0.5, 1, 1,
                           [{"val/iou": 0.5}])

    labelled_by = []

    def fake_pseudo_label(bundles, scenes, out, labelling, progress):
        labelled_by.append([b.path.parent.parent.name for b in bundles])
        return SimpleNamespace(root=out / "chips", kept=3)

    monkeypatch.setattr(rounds_module, "check_before_teacher", lambda *args: None)
    monkeypatch.setattr(rounds_module, "train", fake_train)
    monkeypatch.setattr(rounds_module, "load_bundle", lambda path: SimpleNamespace(path=Path(path), config=config))
    monkeypatch.setattr(rounds_module, "pseudo_label", fake_pseudo_label)
    scenes = [{"image": tmp_path / "b.tif"}]
    state = rounds_module.self_train(config, scenes, 2, progress=False, from_teacher=True)
    runs = tmp_path / "demo-selftrain" / "runs"
    first = runs / "round0" / "checkpoints" / "best.ckpt"
    # three teachers, each its own seed and run folder, all from the configured init
    assert trained[:3] == [("round0", 7, None), ("round0-teacher1", 8, None), ("round0-teacher2", 9, None)]
    # round 1 is labelled by the ensemble of the three, round 2 by the round-1 student alone
    assert labelled_by == [["round0", "round0-teacher1", "round0-teacher2"], ["round1"]]
    assert trained[3][2] == first  # the students start from the first teacher (--from-teacher)
    assert state[0]["checkpoint"] == str(first)
    assert state[0]["ensemble"] == [str(runs / n / "checkpoints" / "best.ckpt")
                                    for n in ("round0", "round0-teacher1", "round0-teacher2")]
    csv_rows = (tmp_path / "demo-selftrain" / "rounds.csv").read_text().splitlines()
    assert csv_rows[0].endswith(",ensemble") and csv_rows[1].endswith(" ".join(state[0]["ensemble"]))
    # the table says that round 1 learnt from the ensemble, round 2 from the round-1 student
    assert [r["teacher"] for r in state] == ["-", "round0 ensemble of 3", "round1"]

    # resuming with another number of teachers is refused, nothing changed
    before = listing(tmp_path)
    other = load_config("demo", [f"train.out={tmp_path}", "selftrain.teachers=2", "train.seed=7"])
    with pytest.raises(ConfigError, match=r"selftrain.teachers=2: .*rounds.json records a round 0 of 3 "
                                          r"teacher\(s\); give selftrain.teachers=3"):
        rounds_module.self_train(other, scenes, 3, progress=False, from_teacher=True)
    assert listing(tmp_path) == before and len(trained) == 5


def test_self_train_cli_pseudo_labels_with_the_teachers_ensemble(tmp_path) -> None:
    from eoseg.models.checkpoint import load_bundle
    from eoseg.selftrain.pseudo import prediction_keys

    config = tiny_yaml(tmp_path)
    assert cli("prepare", str(config), "--quiet") == 0
    unlabelled, _ = buildings_scene(tmp_path / "unlabelled", size=64)
    assert cli("self-train", str(config), "--unlabelled", str(unlabelled), "selftrain.teachers=2", "-q") == 0
    folder = tmp_path / "runs" / "tiny-selftrain"
    state = json.loads((folder / "rounds.json").read_text())
    teachers = [Path(p) for p in state[0]["ensemble"]]
    assert [p.parent.parent.name for p in teachers] == ["round0", "round0-teacher1"]
    assert sha(teachers[0]) != sha(teachers[1])  # two seeds, two models
    bundles = [load_bundle(p) for p in teachers]
    assert [b.config.train.seed for b in bundles] == [42, 43]
    labelling = bundles[0].config  # self-train labels with its own predict / post sections: the yaml's here
    scenes = [{"image": unlabelled}]
    recorded = json.loads((folder / "pseudo" / "round1" / "labels" / "scenes.json").read_text())["scene"]["prediction"]
    assert recorded == prediction_keys(bundles, scenes, labelling)[0]  # the pseudo-labels came from both teachers
    assert recorded != prediction_keys(bundles[:1], scenes, labelling)[0]


def test_self_train_control_takes_the_students_steps_on_the_labelled_chips_alone(tmp_path, capsys) -> None:
    from eoseg.models.checkpoint import load_bundle, read_checkpoint

    config = tiny_yaml(tmp_path)  # epochs of 2 steps (train.limit_train_batches); students train 3 epochs
    assert cli("prepare", str(config), "--quiet") == 0
    unlabelled, _ = buildings_scene(tmp_path / "unlabelled", size=64)
    folder = tmp_path / "runs" / "tiny-selftrain"
    args = ("self-train", str(config), "--unlabelled", str(unlabelled), "selftrain.student_epochs=3", "--from-teacher",
            "--control", "-q")
    assert cli(*args) == 0
    out = " ".join(capsys.readouterr().err.split())
    state = json.loads((folder / "rounds.json").read_text())
    assert [r["round"] for r in state] == [0, 1, "control"]
    teacher, student, control = (Path(r["checkpoint"]) for r in state)
    steps = [read_checkpoint(p.parent / "last.ckpt")["global_step"] for p in (teacher, student, control)]
    assert steps == [2, 6, 6] and state[2]["steps"] == 6 and state[2]["matches_rounds"] == 1
    assert control.parent.parent == folder / "runs" / "control-after-round1"
    trained = load_bundle(control).config
    assert trained.selftrain.mix is None and trained.model.init_checkpoint == teacher  # labelled only, from the teacher
    difference = state[1]["val/iou"] - state[2]["val/iou"]
    assert f"round 1 - control: val/iou {difference:+.4f} (the control took 6 steps" in out
    assert pd.read_csv(folder / "rounds.csv")["round"].astype(str).tolist() == ["0", "1", "control"]

    # a re-run keeps the recorded control (nothing retrained); a run of more rounds trains the control of theirs
    stamp = sha(control)
    assert cli(*args) == 0 and json.loads((folder / "rounds.json").read_text()) == state and sha(control) == stamp
    assert cli(*args[:-2], "--rounds", "2", "--control", "-q") == 0
    more = json.loads((folder / "rounds.json").read_text())
    assert [r["round"] for r in more] == [0, 1, 2, "control"] and more[3]["steps"] == 12
    assert Path(more[3]["checkpoint"]).parent.parent.name == "control-after-round2" and sha(control) == stamp
