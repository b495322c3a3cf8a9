"""ONNX export and onnxruntime prediction: same outputs as the torch checkpoint, metadata inside the file."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
import rasterio
import torch
from inference_helpers import image_stats, write_scene

from eoseg.cli.app import main
from eoseg.config.schema import ChipSpec, DataSpec, ExperimentConfig, HeadSpec, ModelSpec, PredictSpec
from eoseg.inference.engine import EnsembleRunner
from eoseg.models.checkpoint import load_bundle
from eoseg.models.factory import build_model
from eoseg.models.onnx import METADATA_KEY, load_onnx_bundle
from eoseg.training.checkpoint import describe


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small random Unet checkpoint with a dense main head, a second dense head and an image-level head,
    exported through `eoseg export`."""
    folder = tmp_path_factory.mktemp("onnx")
    heads = {
        "mask": HeadSpec(),
        "edge": HeadSpec(channels=2, activation="identity"),
        "image_class": HeadSpec(kind="image_class", channels=2),
    }
    config = ExperimentConfig(
        data=DataSpec(chips=ChipSpec(size=64, overlap=0)),
        model=ModelSpec(
            arch="Unet",
            encoder="resnet18",
            arch_params={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
            heads=heads,
        ),
        loss={},
    )
    stats = image_stats(["red", "nir"], mean=400.0, std=200.0, dtype="uint16")
    stats["inputs"] = ["red", "nir", "(nir-red)/(nir+red+1)"]  # band math travels with the model
    stats["channels"].append(dict(stats["channels"][0], name="ndvi", mean=0.0, std=0.5))
    torch.manual_seed(0)
    model = build_model(config.model, config.task, 3)
    checkpoint = folder / "tiny.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"eoseg": describe(config, stats, []), "state_dict": state, "epoch": 0, "global_step": 0}, checkpoint)
    exported = folder / "tiny.onnx"
    assert run(["export", str(checkpoint), "--out", str(exported)]) == 0
    return checkpoint, exported


def test_export_carries_the_metadata_and_a_dynamic_batch(models) -> None:
    checkpoint, exported = models
    proto = onnx.load(exported)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["inputs"] == ["red", "nir", "(nir-red)/(nir+red+1)"]
    assert meta["bands"] == {"image": ["red", "nir"]}
    assert meta["window"] == 64 and meta["outputs"] == ["mask", "edge", "image_class"]
    assert meta["classes"] == ["background", "building"] and meta["output_stride"] == 8
    assert meta["stats"]["channels"][2]["std"] == 0.5
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"  # dynamic
    bundle = load_onnx_bundle(exported)
    assert (bundle.inputs, bundle.classes, bundle.chip_size) == (meta["inputs"], meta["classes"], 64)


def test_onnx_runner_equals_torch_within_1e4_with_tta(models) -> None:
    checkpoint, exported = models
    torch_bundle, onnx_bundle = load_bundle(checkpoint), load_onnx_bundle(exported)
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 96)).astype(np.float32)  # batch 3, non-square
    spec = PredictSpec(device="cpu", tta="d4")
    expected = EnsembleRunner([torch_bundle], spec, torch.device("cpu"), [0])([x])
    got = EnsembleRunner([onnx_bundle], spec, torch.device("cpu"), [0])([x])
    for name in ("mask", "edge"):
        assert np.abs(got.dense[name] - expected.dense[name]).max() <= 1e-4
    assert np.abs(got.image["image_class"] - expected.image["image_class"]).max() <= 1e-4


def test_predict_onnx_writes_what_the_checkpoint_writes(tmp_path, models) -> None:
    checkpoint, exported = models
    rng = np.random.default_rng(1)
    array = rng.integers(1, 1000, (2, 100, 110)).astype(np.uint16)
    array[:, :7] = 0
    scene = write_scene(tmp_path / "city.tif", array)
    options = ["predict.overlap=16", "predict.tta=flips", "-q"]
    outs = {}
    for label, models_given in {
        "torch": [checkpoint],
        "onnx": [exported],
        "mixed": [checkpoint, exported],  # an ensemble of a torch and an ONNX model
    }.items():
        outs[label] = tmp_path / label
        argv = ["predict", *map(str, models_given), str(scene), "--out", str(outs[label]), *options]
        assert run(argv) == 0
    names = ["city.done.json", "city.edge.tif", "city.heads.json", "city.mask.tif", "city.prob.tif", "config.yaml"]
    for label in outs:
        assert sorted(p.name for p in outs[label].iterdir()) == names
    with rasterio.open(outs["torch"] / "city.edge.tif") as a:
        edge = a.read()
    assert np.isnan(edge[:, :7]).all() and np.isfinite(edge[:, 7:]).all()
    for label in ("onnx", "mixed"):
        with rasterio.open(outs[label] / "city.edge.tif") as b:
            assert np.nanmax(np.abs(b.read() - edge)) <= 1e-4
        with rasterio.open(outs["torch"] / "city.prob.tif") as a, rasterio.open(outs[label] / "city.prob.tif") as b:
            prob_diff = np.abs(a.read().astype(int) - b.read().astype(int))
            assert prob_diff.max() <= 1  # uint8 probabilities: at most one rounding step apart
        heads_a = json.loads((outs["torch"] / "city.heads.json").read_text())
        heads_b = json.loads((outs[label] / "city.heads.json").read_text())
        assert np.allclose(heads_a["image_class"]["mean"], heads_b["image_class"]["mean"], atol=1e-4)


def sha(*paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def refused(argv: list[str], capsys) -> str:
    """Run ``eoseg ARGV``, which must exit 2 with one line on stderr and no traceback; that line."""
    capsys.readouterr()
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def test_onnx_without_eoseg_metadata_is_refused(tmp_path, models, capsys) -> None:
    _, exported = models
    proto = onnx.load(exported)
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    scene = write_scene(tmp_path / "s.tif", np.ones((2, 64, 64), np.uint16))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier output")
    before, inputs = digest(out), sha(bare, garbage, scene)
    assert refused(["predict", str(bare), str(scene), "--out", str(out), "-q"], capsys) == (
        f"error: {bare}: ONNX model has no eoseg metadata (band math, statistics, classes); export it from an "
        "eoseg checkpoint with `eoseg export CKPT --out model.onnx`"
    )
    line = refused(["predict", str(garbage), str(scene), "--out", str(out), "-q"], capsys)
    assert line.startswith(f"error: {garbage}: not a readable ONNX model (") and line.endswith(
        "); export one with `eoseg export`"
    )
    assert digest(out) == before and sha(bare, garbage, scene) == inputs


def test_scene_with_other_bands_than_the_onnx_model_is_refused(tmp_path, models, capsys) -> None:
    _, exported = models
    scene = write_scene(tmp_path / "rgb.tif", np.ones((3, 64, 64), np.uint16))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier output")
    before, inputs = digest(out), sha(exported, scene)
    assert refused(["predict", str(exported), str(scene), "--out", str(out), "-q"], capsys) == (
        f"error: {scene}: scene has 3 band(s) but the model expects 2 for image 'image' (red, nir); give a scene "
        "with the bands the model was trained on"
    )
    assert digest(out) == before and sha(exported, scene) == inputs


def test_export_refuses_to_overwrite_its_checkpoint_and_other_suffixes(tmp_path, models, capsys) -> None:
    checkpoint, _ = models
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert run(["export", str(checkpoint), "--out", str(checkpoint)]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err
    assert run(["export", str(checkpoint), "--out", str(tmp_path / "model.bin")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before
    assert not (tmp_path / "model.bin").exists()
