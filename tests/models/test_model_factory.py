"""build_model: architectures x encoders, every head kind, input channels, siamese pairs, bad names."""

from __future__ import annotations

import pytest
import torch

from eoseg.config.schema import HeadSpec, ModelSpec, SiameseSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.models import ARCHITECTURES, activate, build_model, resolve_architecture

HEADS = {
    "mask": HeadSpec(kind="dense", channels=2),
    "dice": HeadSpec(kind="dense", channels=1, dropout=0.1),
    "image_class": HeadSpec(kind="image_class", channels=3, dropout=0.2),
    "scale": HeadSpec(kind="scalar", channels=1),
    "direction": HeadSpec(kind="direction", dropout=0.2),
}
EXPECTED = {
    "mask": (2, 2, 64, 64),
    "dice": (2, 1, 64, 64),
    "image_class": (2, 3),
    "scale": (2, 1),
    "direction": (2, 2),
}


@pytest.mark.parametrize(
    ("arch", "encoder", "channels"),
    [("Unet", "resnet18", 1), ("fpn", "efficientnet-b0", 13), ("unet++", "tu-resnet10t", 4)],
)
def test_every_head_kind_has_its_shape(arch: str, encoder: str, channels: int) -> None:
    model = build_model(ModelSpec(arch=arch, encoder=encoder, heads=HEADS), TaskSpec(), channels)
    with torch.no_grad():
        out = model(torch.randn(2, channels, 64, 64))
    assert {name: tuple(t.shape) for name, t in out.items()} == EXPECTED
    assert model.backbone.out_channels[0] == channels


@pytest.mark.parametrize("fusion", ["concat", "diff"])
def test_siamese_splits_pre_post_and_shares_the_encoder(fusion: str) -> None:
    heads = {"mask": HeadSpec(channels=1), "damage": HeadSpec(channels=5)}
    spec = ModelSpec(
        arch="Unet",
        encoder="tu-resnet10t",
        heads=heads,
        siamese=SiameseSpec(fusion=fusion),
        arch_params={"decoder_channels": [32, 16, 16, 8, 8]},
    )
    model = build_model(spec, TaskSpec(kind="change"), 6).eval()
    assert model.backbone.out_channels[0] == 3  # one encoder over each 3-channel half
    pre, post = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model(torch.cat([pre, post], dim=1))
        swapped = model(torch.cat([post, pre], dim=1))
        same_halves = model(torch.cat([torch.cat([pre, pre], dim=1), torch.cat([post, post], dim=1)]))
    assert tuple(out["mask"].shape) == (1, 1, 32, 32) and tuple(out["damage"].shape) == (1, 5, 32, 32)
    assert not torch.allclose(out["damage"], swapped["damage"])  # pre and post play different roles
    if fusion == "diff":  # identical halves give all-zero fused features, whatever the image
        assert torch.allclose(same_halves["mask"][0], same_halves["mask"][1], atol=1e-5)
    else:
        assert not torch.allclose(same_halves["mask"][0], same_halves["mask"][1])


def test_siamese_concat_mixes_only_levels_the_decoder_reads() -> None:
    heads = {"mask": HeadSpec(channels=1), "image_class": HeadSpec(kind="image_class", channels=2)}
    spec = ModelSpec(arch="FPN", encoder="tu-resnet10t", heads=heads, siamese=SiameseSpec(fusion="concat"))
    model = build_model(spec, TaskSpec(kind="change"), 8)
    assert sorted(model.encoder.mixers) == ["2", "3", "4", "5"]  # FPN reads strides 4..32, not the input
    out = model(torch.randn(2, 8, 64, 64))
    (out["mask"].mean() + out["image_class"].mean()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []  # what DDP requires


def test_classifier_only_model_has_no_decoder() -> None:
    spec = ModelSpec(
        arch="Unet", encoder="resnet18", heads={"image_class": HeadSpec(kind="image_class", channels=4)}
    )
    model = build_model(spec, TaskSpec(kind="multilabel"), 3)
    assert model.decoder is None
    assert tuple(model(torch.randn(2, 3, 64, 64))["image_class"].shape) == (2, 4)


def test_input_not_multiple_of_stride_is_refused() -> None:
    model = build_model(ModelSpec(arch="Unet", encoder="resnet18"), TaskSpec(), 3)
    with pytest.raises(ValueError, match="not a multiple of the model's stride 32"):
        model(torch.randn(1, 3, 48, 48))


def test_architecture_names_are_case_and_symbol_insensitive() -> None:
    assert resolve_architecture("unet++") is ARCHITECTURES["UnetPlusPlus"]
    assert resolve_architecture("DeepLabV3+") is ARCHITECTURES["DeepLabV3Plus"]
    assert resolve_architecture("LinkNet") is ARCHITECTURES["Linknet"]
    assert {"Unet", "FPN", "PSPNet", "UPerNet", "Segformer"} <= set(ARCHITECTURES)


def test_unknown_architecture_lists_valid_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"model.arch='Unte' is not a known architecture; did you mean 'Unet'\?"
        r" valid: Unet, UnetPlusPlus.*Segformer",
    ):
        build_model(ModelSpec(arch="Unte"), TaskSpec(), 3)


def test_unknown_encoder_lists_valid_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"model.encoder='resnet181' .*did you mean 'resnet18'\?.*"
        r"efficientnet-b7.*or tu-<any timm model>",
    ):
        build_model(ModelSpec(encoder="resnet181"), TaskSpec(), 3)
    with pytest.raises(ConfigError, match=r"'resnet1O' is not a timm model; did you mean 'resnet18'\?"):
        build_model(ModelSpec(encoder="tu-resnet1O"), TaskSpec(), 3)


def test_bad_arch_params_and_odd_siamese_channels_are_config_errors() -> None:
    with pytest.raises(
        ConfigError,
        match=r"model.arch_params: decoder_chanels not accepted by Unet; valid: "
        r"encoder_depth, decoder_use_norm, decoder_channels",
    ):
        build_model(
            ModelSpec(arch="Unet", encoder="resnet18", arch_params={"decoder_chanels": [8]}), TaskSpec(), 3
        )
    with pytest.raises(ConfigError, match="model.siamese: the input has 5 channels.*even"):
        build_model(ModelSpec(siamese=SiameseSpec()), TaskSpec(kind="change"), 5)


def test_activate_follows_head_and_task() -> None:
    logits = torch.tensor([[0.0, 2.0]])
    assert torch.allclose(
        activate(HeadSpec(channels=2), TaskSpec(kind="multiclass"), logits), logits.softmax(1)
    )
    assert torch.allclose(
        activate(HeadSpec(channels=2), TaskSpec(kind="multilabel"), logits), logits.sigmoid()
    )
    one = torch.tensor([[0.0]])
    assert activate(HeadSpec(channels=1), TaskSpec(kind="binary"), one).item() == 0.5
    assert activate(HeadSpec(channels=2), TaskSpec(kind="regression"), logits) is logits
    assert activate(HeadSpec(channels=1, activation="relu"), TaskSpec(kind="regression"), -one).item() == 0.0
    assert torch.allclose(
        activate(HeadSpec(kind="direction"), TaskSpec(), torch.tensor([[3.0, 4.0]])),
        torch.tensor([[0.6, 0.8]]),
    )
    assert activate(HeadSpec(kind="scalar"), TaskSpec(kind="binary"), logits) is logits


def test_the_task_checks_the_mask_head():
    wide = ModelSpec(arch="Unet", encoder="resnet18", heads={"mask": HeadSpec(kind="dense", channels=3)})
    with pytest.raises(ConfigError, match=r"model.heads.mask.channels=3: a binary task's mask head has 1 channel"):
        build_model(wide, TaskSpec(kind="binary"), 3)
    assert build_model(wide, TaskSpec(kind="multiclass"), 3) is not None
    # a sigmoid footprint head with extra target channels (boundary, contact): channel 0 is the object
    footprint = ModelSpec(arch="Unet", encoder="resnet18",
                          heads={"mask": HeadSpec(kind="dense", channels=3, activation="sigmoid")})
    assert build_model(footprint, TaskSpec(kind="binary"), 3).heads["mask"] is not None
