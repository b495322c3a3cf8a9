"""Load an experiment config from a preset name or a YAML file, apply dotted overrides, validate.

``load_config("buildings", ["model.encoder=efficientnet-b2", "train.epochs=30"])``
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from eoseg.config.architectures import check_encoder, resolve_architecture
from eoseg.config.schema import ExperimentConfig
from eoseg.errors import ConfigError
from eoseg.geo.atomic import write_text_atomic
from eoseg.registry import closest, lookup

PRESET_PACKAGE = "eoseg.config.presets"


def list_presets() -> list[str]:
    """Names of the presets shipped inside the package."""
    files = resources.files(PRESET_PACKAGE).iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def read_source(source: str | Path) -> tuple[dict[str, Any], str]:
    """Read the raw mapping of a preset name or YAML path; return it and a label for messages.

    A YAML suffix or an existing file is a path; a preset's name stays the preset even where a folder of that
    name exists in the working folder (``eoseg demo --out demo`` leaves one)."""
    path = Path(source)
    is_preset = path.suffix == "" and str(source) in list_presets()
    if path.suffix.lower() in {".yaml", ".yml"} or path.is_file() or (path.exists() and not is_preset):
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a config; give a YAML file or a preset ({_presets_hint()})")
        if not path.is_file():
            raise ConfigError(f"{path}: config file does not exist; give a YAML file or a preset ({_presets_hint()})")
        text, label = path.read_text(), str(path)
    else:
        name = str(source)
        lookup(dict.fromkeys(list_presets()), name, option="config", what="preset (and no such file)",
               valid=f"give a YAML file or a preset: {', '.join(list_presets())}")
        text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.yaml").read_text()
        label = f"preset {name}"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{label}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if raw is None:  # no document at all (0 bytes, comments only): a truncated or wrong file, not "defaults"
        raise ConfigError(f"{label}: config file is empty; give its sections (data:, model:, train:, ...), e.g. "
                          f"from `eoseg config show demo`, or a preset ({_presets_hint()})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: a config must be a mapping of sections (data, model, task, ...)")
    return raw, label


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` pairs in a nested mapping; values are parsed as YAML (numbers, lists, ...)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. model.encoder=efficientnet-b2")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML") from exc
    return raw


def load_config(
    source: str | Path, overrides: list[str] | None = None, check_models: bool = False
) -> ExperimentConfig:
    """Resolve a preset or YAML file plus dotted overrides into a validated :class:`ExperimentConfig`.

    ``check_models``: also check ``model.arch`` / ``model.encoder`` against smp's registries
    (:func:`check_model_names`; imports smp and torch, 10-15 s cold, so only ``eoseg config show`` asks for it:
    commands that build a model refuse a bad name there, and ``prepare`` does not need torch).
    """
    raw, label = read_source(source)
    raw = apply_overrides(raw, list(overrides or []))
    config = validate_config(raw, label)
    if check_models:
        check_model_names(config, label)
    return config


def validate_config(raw: dict[str, Any], label: str = "config") -> ExperimentConfig:
    """Validate a raw mapping; errors name the key path and suggest the closest valid key."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe_validation_error(exc)}") from exc


def check_model_names(config: ExperimentConfig, label: str = "config") -> None:
    """ConfigError (the registry's line, after ``label``) unless smp knows ``model.arch`` and ``model.encoder``."""
    try:
        resolve_architecture(config.model.arch)
        check_encoder(config.model.encoder)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from exc


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a config saved with :func:`config_to_dict` (e.g. from a checkpoint)."""
    return validate_config(data, "saved config")


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """A plain, YAML/JSON-safe mapping of the resolved config."""
    return config.model_dump(mode="json")


def config_to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config beside a run's outputs (atomically)."""
    return write_text_atomic(path, config_to_yaml(config))


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first error: the dotted key path, what is wrong, and a hint."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
    path = ".".join(loc) or "(root)"
    if err["type"] == "extra_forbidden":
        valid = _fields_at(ExperimentConfig, err["loc"][:-1])
        hint = _suggest(str(err["loc"][-1]), valid)
        listing = f"; valid keys: {', '.join(valid)}" if valid and not hint else ""
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        return f"unknown key {path}{hint}{listing}{more}"
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    shown = f" (got {given!r})" if given is not None and not isinstance(given, dict | list) else ""
    return f"{path}: {msg}{shown}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section at ``loc`` (best effort through dicts and lists)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(str(part))
        if field is not None:  # otherwise ``part`` is a dict key (a head or target name): stay
            current = _section_type(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _section_type(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as ``X``, ``X | None``, ``list[X]``, ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _suggest(word: str, choices: list[str]) -> str:
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


def _presets_hint() -> str:
    return "presets: " + ", ".join(list_presets())
