"""Scene lists from the config or a CSV, and folds grouped by scene or region."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures.synthetic_scenes import buildings_scene

from eoseg.config.loader import validate_config
from eoseg.data.folds import assign_folds
from eoseg.data.prepare import prepare
from eoseg.data.scenes import load_scenes
from eoseg.errors import ConfigError, InputError


def data_spec(**data):
    return validate_config({"data": {"targets": {"mask": {"kind": "vector"}}, **data}}).data


def test_scenes_csv_resolves_paths_next_to_the_csv(tmp_path):
    buildings_scene(tmp_path / "in")
    csv = tmp_path / "in" / "scenes.csv"
    csv.write_text("id,region,image,mask\na,accra,scene.tif,buildings.geojson\nb,,scene.tif,\n")
    scenes = load_scenes(data_spec(scenes_file=str(csv)))
    assert [s.id for s in scenes] == ["a", "b"] and [s.region for s in scenes] == ["accra", None]
    assert scenes[0].images["image"] == tmp_path / "in" / "scene.tif"
    assert scenes[0].targets == {"mask": tmp_path / "in" / "buildings.geojson"} and scenes[1].targets == {}


def test_scene_list_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.scenes: no scenes given"):
        load_scenes(data_spec())
    with pytest.raises(InputError, match=r"nope\.csv: scenes file does not exist"):
        load_scenes(data_spec(scenes_file=str(tmp_path / "nope.csv")))
    (tmp_path / "x.csv").write_text("name,image\na,b.tif\n")
    with pytest.raises(InputError, match=r"x\.csv: scenes file has no 'id' column"):
        load_scenes(data_spec(scenes_file=str(tmp_path / "x.csv")))
    twice = [{"id": "a", "images": {"image": "a.tif"}}] * 2
    with pytest.raises(ConfigError, match=r"scene id 'a' is used twice"):
        load_scenes(data_spec(scenes=twice))


def test_folds_are_balanced_deterministic_and_keep_groups_together():
    counts = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 10, "f": 10}
    folds = assign_folds(counts, 3, seed=1)
    assert folds == assign_folds(dict(reversed(counts.items())), 3, seed=1)
    totals = [sum(n for g, n in counts.items() if folds[g] == k) for k in range(3)]
    assert sorted(totals) == [50, 50, 60]
    assert set(assign_folds({"x": 1}, 1).values()) == {0}


def test_folds_by_region_group_the_scenes_of_a_city(tmp_path):
    image, labels = buildings_scene(tmp_path / "in")
    scenes = [
        {"id": f"s{i}", "region": city, "images": {"image": str(image)}, "targets": {"mask": str(labels)}}
        for i, city in enumerate(["accra", "accra", "dar", "kampala"])
    ]
    config = validate_config(
        {
            "data": {
                "root": str(tmp_path / "out"),
                "scenes": scenes,
                "targets": {"mask": {"kind": "vector"}},
                "chips": {"size": 64, "overlap": 0},
                "folds": 3,
                "fold_by": "region",
            }
        }
    )
    m = pd.read_parquet(prepare(config, progress=False).manifest)
    per_region = m.groupby("region").fold.nunique()
    assert (per_region == 1).all() and m.fold.nunique() == 3
    assert m.groupby("fold").size().max() == 8  # accra: two scenes of 4 chips
    config.data.scenes[3].region = None
    with pytest.raises(ConfigError, match=r"fold_by=region but scene\(s\) \['s3'\] have no region"):
        prepare(config, overwrite=True, progress=False)
