"""Self-describing checkpoints, safe loading, and the bad inputs a run refuses before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eoseg.cli.app import main
from eoseg.errors import ConfigError, InputError
from eoseg.models.checkpoint import load_bundle, read_checkpoint
from eoseg.training.train import train

from .chipdata import tiny_config, write_chips


@pytest.fixture(scope="module")
def trained(chips, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(tiny_config(chips("binary"), "binary", out), progress=False, report=False)


def test_bundle_describes_itself(trained):
    bundle = load_bundle(trained.best_checkpoint)
    assert bundle.inputs == ["image_1", "image_2", "image_3"]
    assert bundle.bands == {"image": ["image_1", "image_2", "image_3"]} and bundle.image_names == ["image"]
    assert bundle.classes == ["background", "building"] and bundle.chip_size == 32
    assert bundle.stats["nodata"] == {"image": 0} and len(bundle.stats["channels"]) == 3
    assert not bundle.model.training and bundle.extra["epoch"] == 0
    entry = read_checkpoint(trained.best_checkpoint)["eoseg"]
    assert entry["architecture"]["arch"] == "Unet" and entry["architecture"]["in_channels"] == 3
    with torch.no_grad():
        assert bundle.model(torch.zeros(1, 3, 32, 32))["mask"].shape == (1, 1, 32, 32)


class Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_pickle_payload_is_refused(trained, tmp_path):
    checkpoint = torch.load(trained.best_checkpoint, weights_only=True)
    marker = tmp_path / "code-ran"
    checkpoint["eoseg"]["extra"] = Payload(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(checkpoint, evil)
    with pytest.raises(InputError, match=r"evil.ckpt: refused to load, the file carries pickled Python objects"):
        load_bundle(evil)
    assert not marker.exists()


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(InputError, match=r"nope.ckpt: checkpoint not found"):
        load_bundle(tmp_path / "nope.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "plain.pt")
    with pytest.raises(InputError, match=r"plain.pt: not an eoseg checkpoint \(no 'eoseg' entry\)"):
        load_bundle(tmp_path / "plain.pt")
    (tmp_path / "notes.ckpt").write_text("hello")
    with pytest.raises(InputError, match=r"notes.ckpt: not a PyTorch checkpoint"):
        load_bundle(tmp_path / "notes.ckpt")


def test_init_checkpoint_with_other_input_channels(trained, tmp_path):
    root = write_chips(tmp_path / "chips", "binary", inputs=["image_1", "image_2"])
    config = tiny_config(root, "binary", tmp_path, {
        "data.inputs": ["image_1", "image_2"], "model.init_checkpoint": str(trained.best_checkpoint)})
    with pytest.raises(ConfigError, match=r"model.init_checkpoint=.*best.ckpt: the init checkpoint expects 3 input "
                                          r"channels .* but the model has 2"):
        train(config, progress=False, report=False)


def test_init_checkpoint_starts_from_its_weights(trained, chips, tmp_path):
    config = tiny_config(chips("binary"), "binary", tmp_path, {
        "model.init_checkpoint": str(trained.last_checkpoint), "train.limit_train_batches": 0})
    from eoseg.training.module import SegmentationTask

    module = SegmentationTask(config, read_checkpoint(trained.last_checkpoint)["eoseg"]["stats"])
    saved = read_checkpoint(trained.last_checkpoint)["state_dict"]
    assert all(torch.equal(v, saved[f"model.{k}"]) for k, v in module.model.state_dict().items())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.arch": "Unett"}, r"model.arch='Unett' is not a known architecture; did you mean 'Unet'\? "
                                  r"valid: .*FPN"),
        ({"loss": {"mask": {"dicee": 1.0}}}, r"dicee.*valid.*bce.*focal"),
        ({"train.monitor": "val/accuracy"}, r"train.monitor='val/accuracy' is not logged by the binary task; "
                                            r"valid: val/iou, val/f1"),
    ],
)
def test_unknown_names_are_listed(chips, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(chips("binary"), "binary", tmp_path, overrides), progress=False, report=False)


def test_cli_prints_one_line_errors(chips, tmp_path, capsys):
    config = tiny_config(chips("binary"), "binary", tmp_path)
    path = tmp_path / "tiny.yaml"
    from eoseg.config import save_config

    save_config(config, path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(path), "data.folds=6", "data.fold=5", "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: data.fold=5 is out of range:" in err and "has folds [0, 1, 2]" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["train", str(path), "--resume", "--quiet"])
    assert "nothing to resume (no last checkpoint in this run folder)" in capsys.readouterr().err
