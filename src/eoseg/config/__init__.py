"""Typed experiment configuration: schema, YAML loading, dotted overrides, presets."""

from eoseg.config.loader import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    list_presets,
    load_config,
    save_config,
)
from eoseg.config.schema import ExperimentConfig

__all__ = [
    "ExperimentConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "list_presets",
    "load_config",
    "save_config",
]
