"""Local weights: encoder weights from a state dict or safetensors file, init state dicts, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from eoseg.config.schema import HeadSpec, ModelSpec, TaskSpec
from eoseg.errors import ConfigError, InputError
from eoseg.models import build_model, load_encoder_weights, load_init_state

SPEC = ModelSpec(arch="Unet", encoder="resnet18", heads={"mask": HeadSpec(channels=1)})


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return build_model(SPEC, TaskSpec(), 3)


def same_encoder(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.backbone.state_dict(), b.backbone.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_encoder_weights_from_a_torch_state_dict(source: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "encoder.pt"
    torch.save(source.encoder.state_dict(), path)
    model = build_model(SPEC.model_copy(update={"encoder_weights": path}), TaskSpec(), 3)
    assert same_encoder(model, source)


def test_encoder_weights_from_safetensors_of_a_whole_model(source: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)  # keys prefixed encoder.
    target = build_model(SPEC, TaskSpec(), 3)
    report = load_encoder_weights(target.backbone, path)
    assert same_encoder(target, source)
    assert len(report.loaded) == len(source.encoder.state_dict()) and not report.missing


def test_torchvision_classifier_weights_fit_the_resnet_encoder(tmp_path: Path) -> None:
    classifier = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), path)
    model = build_model(SPEC, TaskSpec(), 3)
    report = load_encoder_weights(model.backbone, path)
    assert report.unexpected == ["fc.bias", "fc.weight"]
    assert torch.equal(model.backbone.conv1.weight, classifier.conv1.weight)


def test_rgb_encoder_weights_are_adapted_to_other_band_counts(source: torch.nn.Module, tmp_path: Path) -> None:
    """timm's first-conv adaptation: 4 or 1 input channels from RGB weights (SAR, multispectral)."""
    from timm.models import adapt_input_conv

    path = tmp_path / "rgb.pt"
    torch.save(source.encoder.state_dict(), path)
    rgb = source.encoder.conv1.weight.detach()
    four = build_model(SPEC.model_copy(update={"encoder_weights": path}), TaskSpec(), 4)
    assert four.backbone.conv1.weight.shape[1] == 4
    assert torch.allclose(four.backbone.conv1.weight, adapt_input_conv(4, rgb))
    assert torch.allclose(four.backbone.conv1.weight[:, 3], rgb[:, 0] * 3 / 4)  # channels repeat, rescaled
    assert torch.equal(four.backbone.layer1[0].conv1.weight, source.encoder.layer1[0].conv1.weight)
    one = build_model(SPEC.model_copy(update={"encoder_weights": path}), TaskSpec(), 1)
    assert torch.allclose(one.backbone.conv1.weight[:, 0], rgb.sum(dim=1))
    report = load_encoder_weights(one.backbone, path)
    assert report.adapted == ["conv1.weight"] and "conv1.weight adapted" in report.summary()


def test_weights_of_another_encoder_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"blocks.0.weight": torch.zeros(2, 2)}, path)
    model = build_model(SPEC, TaskSpec(), 3)
    before = model.backbone.conv1.weight.clone()
    with pytest.raises(
        ConfigError, match=r"the file does not fit encoder ResNetEncoder \(\d+ tensors missing"
    ):
        load_encoder_weights(model.backbone, path)
    assert torch.equal(model.backbone.conv1.weight, before)


class Payload:
    """Any Python object: a file that pickles one must not be loaded."""


def test_missing_file_and_pickle_payload_are_input_errors(source: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope.pt: weights file not found; check the path"):
        load_encoder_weights(source.backbone, tmp_path / "nope.pt")
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": source.encoder.state_dict(), "extra": Payload()}, path)
    with pytest.raises(
        InputError, match=r"pickled.pt: refused to load, the file carries pickled Python objects"
    ):
        load_encoder_weights(source.backbone, path)


def test_init_state_keeps_new_heads_and_checks_channels(source: torch.nn.Module) -> None:
    heads = {"mask": HeadSpec(channels=3), "image_class": HeadSpec(kind="image_class", channels=2)}
    target = build_model(SPEC.model_copy(update={"heads": heads}), TaskSpec(kind="multiclass"), 3)
    lightning_style = {f"model.{k}": v for k, v in source.state_dict().items()}
    report = load_init_state(target, lightning_style, "init.ckpt")
    assert same_encoder(target, source)
    assert report.mismatched == ["heads.mask.head.0.weight", "heads.mask.head.0.bias"]
    assert report.missing == ["heads.image_class.head.3.weight", "heads.image_class.head.3.bias"]
    four = build_model(SPEC, TaskSpec(), 4)
    with pytest.raises(
        ConfigError, match=r"init.ckpt: the init checkpoint expects 3 input channels .* the model has 4"
    ):
        load_init_state(four, source.state_dict(), "init.ckpt")
    with pytest.raises(
        ConfigError, match=r"init.ckpt: no parameter of the init checkpoint matches this model"
    ):
        load_init_state(four, {"x.weight": torch.zeros(1)}, "init.ckpt")
