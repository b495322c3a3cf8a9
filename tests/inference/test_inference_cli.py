"""``eoseg predict`` on the command line: checkpoints, scenes and overrides, and a real checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import image_stats, write_scene

from eoseg.cli.app import main
from eoseg.cli.predict_cmd import parse_scene, split_items
from eoseg.config import load_config
from eoseg.config.schema import ChipSpec, DataSpec, ExperimentConfig, ModelSpec
from eoseg.errors import ConfigError, InputError
from eoseg.models.factory import build_model
from eoseg.training.checkpoint import describe


def test_items_are_split_into_checkpoints_scenes_and_overrides() -> None:
    args = split_items(
        [
            "a.ckpt",
            "b.safetensors",
            "city.tif",
            "pre=x.tif,post=y.tif",
            "predict.tta=d4",
            "post.threshold=0.4",
        ]
    )
    assert [p.name for p in args.checkpoints] == ["a.ckpt", "b.safetensors"]
    assert args.scenes == ["city.tif", "pre=x.tif,post=y.tif"]
    assert args.overrides == ["predict.tta=d4", "post.threshold=0.4"]
    assert parse_scene("pre=x.tif,post=y.tif", ["pre", "post"]) == {
        "pre": Path("x.tif"),
        "post": Path("y.tif"),
    }
    assert parse_scene("city.tif", ["image"]) == {"image": Path("city.tif")}


def test_bad_items_name_what_is_wrong() -> None:
    with pytest.raises(
        ConfigError, match=r"override 'model.encoder=x': only predict.\* and post.\* can be changed"
    ):
        split_items(["a.ckpt", "s.tif", "model.encoder=x"])
    with pytest.raises(InputError, match="no checkpoint given"):
        split_items(["s.tif"])
    with pytest.raises(InputError, match="no scene given"):
        split_items(["a.ckpt"])
    with pytest.raises(
        InputError,
        match=r"scene 'a.tif': the model takes images \['pre', 'post'\]; give the scene "
        r"as pre=FILE,post=FILE",
    ):
        parse_scene("a.tif", ["pre", "post"])


def run(argv: list[str]) -> int:
    """Run the eoseg command line in-process; return its exit status."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real eoseg checkpoint of a small random Unet (as `eoseg train` writes it)."""
    config = ExperimentConfig(
        data=DataSpec(chips=ChipSpec(size=64, overlap=0)),
        model=ModelSpec(
            arch="Unet", encoder="resnet18", arch_params={"encoder_depth": 3, "decoder_channels": [32, 16, 8]}
        ),
    )
    stats = image_stats(["image"], mean=400.0, std=200.0)
    stats["dtypes"] = {"image": "uint16"}  # trained on uint16 scenes like the ones predicted below
    torch.manual_seed(0)
    model = build_model(config.model, config.task, 1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {"eoseg": describe(config, stats, []), "state_dict": state, "epoch": 0, "global_step": 0}, path
    )
    return path


def test_predict_command_end_to_end(tmp_path, checkpoint, capsys) -> None:
    array = np.random.default_rng(0).integers(1, 1000, (1, 90, 110)).astype(np.uint16)
    array[0, :10] = 0
    scene = write_scene(tmp_path / "city.tif", array)
    out = tmp_path / "pred"
    assert (
        run(
            [
                "predict",
                str(checkpoint),
                str(scene),
                "--out",
                str(out),
                "predict.overlap=16",
                "post.threshold=0.3",
                "--quicklook",
                "-q",
            ]
        )
        == 0
    )
    names = ["city.done.json", "city.mask.tif", "city.prob.tif", "city.quicklook.png", "config.yaml"]
    assert sorted(p.name for p in out.iterdir()) == names
    resolved = load_config(out / "config.yaml")  # the run's resolved config, overrides applied
    assert (resolved.predict.overlap, resolved.post.threshold) == (16, 0.3)
    with rasterio.open(out / "city.mask.tif") as src:
        mask = src.read(1)
    assert (mask[:10] == 255).all() and (mask[10:] != 255).all()
    assert "city.prob.tif" in capsys.readouterr().err


def test_predict_command_errors_are_one_line(tmp_path, checkpoint, capsys) -> None:
    scene = write_scene(tmp_path / "rgb.tif", np.ones((3, 40, 40), np.uint8))
    cases = [
        ([str(tmp_path / "missing.ckpt"), str(scene)], "missing.ckpt: checkpoint not found"),
        ([str(checkpoint), str(scene)], "rgb.tif: scene has 3 band(s) but the model expects 1"),
        ([str(checkpoint), str(scene), "predict.tta=d8"], "predict.tta"),
    ]
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    cases.append(([str(other), str(scene)], "other.ckpt: not an eoseg checkpoint"))
    for args, message in cases:
        assert run(["predict", *args, "--out", str(tmp_path / "o"), "-q"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    out = tmp_path / "typo"  # predict.compress is read: a value GDAL would take but predict does not is refused
    assert run(["predict", str(checkpoint), str(scene), "--out", str(out), "predict.compress=lzma", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("predict.compress: Input should be 'deflate' or 'zstd' (got 'lzma')")
    assert len(err.splitlines()) == 1 and not out.exists()
