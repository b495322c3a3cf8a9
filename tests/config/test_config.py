"""The typed experiment config: presets, dotted overrides, and one-line errors with hints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eoseg.config import config_to_yaml, list_presets, load_config, save_config
from eoseg.config.loader import config_from_dict, config_to_dict
from eoseg.errors import ConfigError


def test_presets_ship_buildings_and_demo():
    assert {"buildings", "demo"} <= set(list_presets())


def test_buildings_preset_is_the_open_cities_recipe():
    cfg = load_config("buildings")
    assert (cfg.model.arch, cfg.model.encoder) == ("FPN", "efficientnet-b1")
    assert cfg.model.heads["mask"].channels == 2
    assert cfg.model.heads["image_class"].kind == "image_class"
    assert cfg.loss["dice"]["dice"] == pytest.approx(0.1)
    assert cfg.loss["mask"]["focal"].weight == pytest.approx(1.0)
    assert (cfg.optim.name, cfg.schedule.name) == ("adamw", "onecycle")
    assert cfg.data.chips.size == 512
    assert cfg.data.chips.scales == [0.5, 1.0, 2.0]


def test_dotted_overrides_are_typed():
    cfg = load_config("buildings", ["model.encoder=efficientnet-b2", "train.epochs=30", "data.chips.scales=[1, 2]"])
    assert cfg.model.encoder == "efficientnet-b2"
    assert cfg.train.epochs == 30
    assert cfg.data.chips.scales == [1.0, 2.0]


def test_yaml_file_with_overrides(tmp_path: Path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "model": {"arch": "Unet", "encoder": "resnet18"}}))
    cfg = load_config(path, ["train.batch_size=4"])
    assert (cfg.name, cfg.model.encoder, cfg.train.batch_size) == ("mine", "resnet18", 4)


def test_unknown_key_names_path_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown key model\.encodr \(did you mean 'encoder'\?\)"):
        load_config("buildings", ["model.encodr=resnet18"])


def test_unknown_key_inside_a_named_head_suggests_field():
    with pytest.raises(ConfigError, match=r"model\.heads\.mask\.kindd \(did you mean 'kind'\?\)"):
        load_config("buildings", ["model.heads.mask.kindd=dense"])


def test_wrong_type_names_path_and_value():
    with pytest.raises(ConfigError, match=r"train\.epochs: .*integer.*\(got 'many'\)"):
        load_config("demo", ["train.epochs=many"])


def test_fold_out_of_range_is_explained():
    with pytest.raises(ConfigError, match=r"fold 9 is out of range: data.folds is 7 \(use 0\.\.6\)"):
        load_config("buildings", ["data.fold=9"])


def test_loss_for_missing_head_is_rejected():
    with pytest.raises(ConfigError, match=r"loss names head\(s\) \['height'\]"):
        load_config("demo", ["loss.height={huber: 1.0}"])


def test_unknown_preset_suggests_closest():
    msg = r"config='buildngs' is not a known preset \(and no such file\); did you mean 'buildings'\? give a YAML"
    with pytest.raises(ConfigError, match=msg):
        load_config("buildngs")


def test_missing_yaml_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # what `eoseg demo --out demo` leaves behind
    assert load_config("demo", ["train.epochs=3"]).train.epochs == 3


def test_a_folder_is_not_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match=r"^runs: is a folder, not a config; give a YAML file or a preset \("):
        load_config("runs")


def test_invalid_yaml_reports_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  arch: [Unet\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+ is not valid YAML"):
        load_config(path)


def test_malformed_override():
    with pytest.raises(ConfigError, match=r"expected key=value"):
        load_config("demo", ["train.epochs"])


def test_resolved_config_round_trips(tmp_path: Path):
    cfg = load_config("buildings", ["train.epochs=3"])
    saved = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(saved)
    assert again == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert "efficientnet-b1" in config_to_yaml(cfg)


def test_saved_config_with_legacy_boundary_width_still_loads():
    """Checkpoints saved before data.targets.*.boundary/contact carry boundary_width; they must keep loading."""
    from eoseg.config.schema import TargetSpec

    target = TargetSpec.model_validate({"extra_channels": ["boundary", "contact"], "boundary_width": 3})
    assert (target.boundary.inner, target.boundary.outer) == (3, 0)
    assert (target.contact.spacing, target.contact.unit) == (6.0, "px")
    # the new keys win when both are given
    both = TargetSpec.model_validate({"boundary_width": 3, "boundary": {"inner": 1, "outer": 1}})
    assert (both.boundary.inner, both.boundary.outer) == (1, 1)
