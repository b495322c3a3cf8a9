"""Temporary files of atomic writes: the leftovers of one target are found exactly, never another's."""

from __future__ import annotations

import re

from eoseg.geo.atomic import leftover_temporaries, temporary_beside

PRODUCTS = r"\.[^.]+"  # <scene>.<product>.<ext>
SUFFIXES = r"\.part\.[^.]+|\.tiles\.tif"


def test_leftovers_of_a_scene_are_exactly_its_own(tmp_path) -> None:
    made = {
        scene: [temporary_beside(tmp_path / f"{scene}.{product}", suffix)
                for product, suffix in [("prob.tif", ".tiles.tif"), ("mask.tif", ".part.tif"),
                                        ("done.json", ".part.json"), ("polygons.gpkg", ".part.gpkg")]]
        for scene in ["a", "a.b", "a.prob", "ab", "a[1]", "a.*"]
    }
    (tmp_path / "a.prob.tif").write_text("a finished output")  # not a temporary
    (tmp_path / ".a.notes").write_text("a user's hidden file")  # not named like a temporary
    for scene, temporaries in made.items():
        assert leftover_temporaries(tmp_path, re.escape(scene) + PRODUCTS, SUFFIXES) == sorted(temporaries), scene


def test_no_folder_has_no_leftovers(tmp_path) -> None:
    assert leftover_temporaries(tmp_path / "absent", "a", SUFFIXES) == []
