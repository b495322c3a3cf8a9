"""Every shipped preset resolves, builds its model and loss, and runs one forward/backward pass."""

from __future__ import annotations

import pytest
import torch

from eoseg.config import list_presets, load_config
from eoseg.data.augment import build_transform
from eoseg.losses import build_criterion
from eoseg.models.factory import build_model


def _targets(config, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A plausible target per head (shapes as in docs/design.md)."""
    targets = {}
    for name, out in outputs.items():
        head = config.model.heads[name]
        if head.kind == "direction":
            targets[name] = torch.nn.functional.normalize(torch.randn(out.shape[0], 2), dim=1)
        elif config.task.kind == "regression":
            targets[name] = torch.rand(out.shape) * 10
        elif head.kind == "image_class" and head.channels > 1 and config.task.kind != "multilabel":
            targets[name] = torch.randint(0, 2, (out.shape[0],))  # softmax classifier: class index
        elif head.kind == "image_class":
            targets[name] = torch.randint(0, 2, out.shape).float()
        elif config.task.kind == "multilabel":
            targets[name] = torch.randint(0, 2, out.shape).float()
        elif head.channels == 1:
            targets[name] = torch.randint(0, 2, out.shape).float()
        else:
            targets[name] = torch.randint(0, head.channels, (out.shape[0], *out.shape[2:]))
    return targets


@pytest.mark.parametrize("preset", list_presets())
def test_preset_builds_and_trains_one_step(preset: str):
    config = load_config(preset)
    in_channels = len(config.data.inputs)
    model = build_model(config.model, config.task, in_channels)
    criterion = build_criterion(config)
    x = torch.randn(2, in_channels, 64, 64)
    outputs = model(x)
    assert set(outputs) == set(config.model.heads)
    total, parts = criterion(outputs, _targets(config, outputs))
    total.backward()
    assert torch.isfinite(total) and set(p.split("/")[0] for p in parts) == set(config.loss)


def test_all_five_recipes_ship_as_presets():
    assert {"buildings", "sar-buildings", "damage", "geopose", "clouds", "demo"} <= set(list_presets())


@pytest.mark.parametrize("preset", list_presets())
def test_preset_augmentations_build_without_a_deprecation_note(preset: str, recwarn):
    """The buildings preset's ShiftScaleRotate printed albumentations' "special case of Affine, use Affine"
    at every train; every preset spells its transforms as albumentations 2 does."""
    for index, spec in enumerate(load_config(preset).data.augment):
        build_transform(spec, index)
    assert [str(w.message) for w in recwarn] == []


@pytest.mark.parametrize("name", list_presets())
def test_every_presets_model_names_are_known_to_smp(name):
    """``eoseg config show <preset>`` skips the smp import because the tests check the presets' names here."""
    from eoseg.config.loader import check_model_names

    check_model_names(load_config(name), f"preset {name}")


def test_loading_a_config_does_not_import_torch():
    """``prepare`` and ``config show <preset>`` load configs; the model-name check (smp, torch: 10-15 s) is opt-in."""
    import subprocess
    import sys

    code = ("import sys; from eoseg.config import load_config; load_config('demo', ['model.arch=Unett']); "
            "print(sorted(m for m in ('torch', 'segmentation_models_pytorch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
