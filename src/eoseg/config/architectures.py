"""The names ``model.arch`` and ``model.encoder`` may take, read from segmentation-models-pytorch's own
registries (and timm's for ``tu-<name>``). smp (and so torch) is imported on the first check, not with the config.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eoseg.errors import ConfigError
from eoseg.registry import did_you_mean, lookup

TIMM_PREFIX = "tu-"


@cache
def architectures() -> dict[str, Any]:
    """Architecture name -> smp class, from smp's registry. DPT is left out: its ViT encoder returns tokens no
    eoseg head reads."""
    import segmentation_models_pytorch as smp

    return {cls.__name__: cls for key, cls in smp.MODEL_ARCHITECTURES_MAPPING.items() if key != "dpt"}


def _arch_key(name: str) -> str:
    """Spelling-insensitive key: ``unet++``, ``UnetPlusPlus`` and ``unet_plus_plus`` are one architecture."""
    key = name.lower().replace("++", "plusplus").replace("+", "plus")
    return "".join(ch for ch in key if ch.isalnum())


def resolve_architecture(name: str) -> Any:
    """The smp class for ``name`` (case and ``+``/``-``/``_`` insensitive); ConfigError lists valid names."""
    return lookup(architectures(), name, option="model.arch", what="architecture", key=_arch_key)


def check_encoder(name: str) -> None:
    """Raise ConfigError unless ``name`` is an smp encoder or ``tu-<timm model>``."""
    import segmentation_models_pytorch as smp
    import timm

    smp_names = smp.encoders.get_encoder_names()
    if name in smp_names:
        return
    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX) :]
        if timm.is_model(timm_name):
            return
        hint = did_you_mean(timm_name, timm.list_models())
        raise ConfigError(
            f"model.encoder={name!r}: {timm_name!r} is not a timm model; {hint}"
            "use tu-<name> with a name from timm.list_models(), e.g. tu-resnet18, tu-efficientnet_b0"
        )
    lookup(dict.fromkeys(smp_names), name, option="model.encoder", what="encoder",
           valid=f"valid: {', '.join(smp_names)}, or tu-<any timm model> (e.g. tu-convnext_tiny)")
