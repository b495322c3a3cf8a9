"""Completion markers: a scene counts as done (and is skipped on resume) only when its ``<scene>.done.json``
was written after its last output and still matches the outputs, the inputs and the settings."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
from inference_helpers import PointwiseModel, make_bundle, write_scene

from eoseg.config.schema import PostSpec, PredictSpec
from eoseg.errors import InputError
from eoseg.inference.distributed import run_scenes
from eoseg.post.postprocess import Postprocessor

SPEC = PredictSpec(device="cpu", window=32, overlap=8)
POST = PostSpec(min_area=1.0)  # 4 pixels of 0.5 m: the mask needs the second (finalising) pass


@pytest.fixture()
def scenes(tmp_path):
    rng = np.random.default_rng(0)
    return [
        write_scene(tmp_path / f"tile{i}.tif", rng.integers(1, 255, (1, 40 + 10 * i, 50)).astype(np.uint8))
        for i in range(3)
    ]


def bundle():
    return make_bundle(PointwiseModel(1), chip=32, mean=128.0, std=64.0)


def stamps(folder) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def pixels(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def predict(scenes, out, post=POST, resume=True):
    images = [{"image": p} for p in scenes]
    return run_scenes([bundle()], images, [p.stem for p in scenes], out, SPEC, post, progress=False, resume=resume)


def test_scene_killed_between_mask_and_marker_is_redone_complete_ones_skipped(scenes, tmp_path, monkeypatch):
    out = tmp_path / "pred"
    finalize = Postprocessor.finalize

    def killed_on_tile1(self, mask_path, *args, **kwargs):
        if "tile1" in str(mask_path):
            raise KeyboardInterrupt  # like a kill: the mask is written, its second pass and the marker are not
        return finalize(self, mask_path, *args, **kwargs)

    monkeypatch.setattr(Postprocessor, "finalize", killed_on_tile1)
    with pytest.raises(KeyboardInterrupt):
        predict(scenes, out)
    monkeypatch.setattr(Postprocessor, "finalize", finalize)
    assert (out / "tile1.mask.tif").is_file() and (out / "tile1.prob.tif").is_file()
    assert not (out / "tile1.done.json").exists() and not (out / "tile2.mask.tif").exists()
    marker = json.loads((out / "tile0.done.json").read_text())
    assert sorted(marker["outputs"]) == ["tile0.mask.tif", "tile0.prob.tif"]
    assert marker["outputs"]["tile0.mask.tif"]["size"] == (out / "tile0.mask.tif").stat().st_size
    before = stamps(out)

    reports = predict(scenes, out)
    assert [r.status for r in reports] == ["skipped", "done", "done"]
    after = stamps(out)
    assert after["tile0.mask.tif"] == before["tile0.mask.tif"] and after["tile0.done.json"] == before["tile0.done.json"]
    assert after["tile1.mask.tif"] != before["tile1.mask.tif"]
    reference = predict(scenes[1:2], tmp_path / "reference", resume=False)
    assert reference[0].status == "done"
    for kind in ("mask", "prob"):  # the redone scene equals an uninterrupted run (second pass included)
        expected = pixels(tmp_path / "reference" / f"tile1.{kind}.tif")
        np.testing.assert_array_equal(pixels(out / f"tile1.{kind}.tif"), expected)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    os.utime(out / "tile2.prob.tif")  # an output changed since its marker was written
    assert [r.status for r in predict(scenes, out)] == ["skipped", "skipped", "done"]
    assert [r.status for r in predict(scenes, out, PostSpec(min_area=2.0))] == ["done"] * 3  # other settings
    assert [r.status for r in predict(scenes, out, PostSpec(min_area=2.0))] == ["skipped"] * 3


def test_marker_named_like_an_input_is_refused_before_anything_is_written(tmp_path):
    scene = write_scene(tmp_path / "a.done.json", np.full((1, 40, 40), 9, np.uint8))  # odd, but an input
    before = scene.read_bytes()
    with pytest.raises(InputError, match=r"--out .*a\.done\.json: is the input .*choose another output path"):
        run_scenes([bundle()], [{"image": scene}], ["a"], tmp_path, SPEC, POST, progress=False)
    assert scene.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.done.json"]


def test_a_killed_attempts_temporaries_are_removed_but_not_those_of_a_scene_named_with_a_dot(scenes, tmp_path):
    """Scene ``a`` and scene ``a.b`` share ``--out`` (two Ray workers): starting ``a`` removes the temporaries
    its killed attempt left, never the ones ``a.b`` is writing (the glob ``.a.*`` matched them)."""
    out = tmp_path / "pred"
    out.mkdir()
    killed = [out / ".a.prob.k2x9qzr1.tiles.tif", out / ".a.mask.3jd8x_01.part.tif",
              out / ".a.done.0qpx7dk2.part.json"]
    in_flight = [out / ".a.b.prob.k2x9qzr1.tiles.tif", out / ".a.b.mask.3jd8x_01.part.tif",
                 out / ".a.b.done.0qpx7dk2.part.json"]
    for path in killed + in_flight:
        path.write_bytes(path.name.encode())
    reports = run_scenes([bundle()], [{"image": scenes[0]}], ["a"], out, SPEC, POST, progress=False)
    assert reports[0].status == "done"
    assert not [p for p in killed if p.exists()]
    assert [p.read_bytes() for p in in_flight] == [p.name.encode() for p in in_flight]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a.done.json", "a.mask.tif", "a.prob.tif"]


def test_scenes_bar_stops_where_the_scenes_failed_and_says_how_many(scenes, tmp_path, capsys):
    """A failed and a missing scene are not counted as predicted: the bar above the error line must not read
    100 % (it did: every scene advanced it, whatever its status); a skipped (resumed) scene counts."""
    out = tmp_path / "pred"
    predict(scenes[:1], out)  # tile0 is complete: skipped below
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"not a tiff" * 8)
    images = [{"image": p} for p in [scenes[0], bad, tmp_path / "nowhere.tif", scenes[1]]]
    capsys.readouterr()
    reports = run_scenes([bundle()], images, ["tile0", "bad", "nowhere", "tile1"], out, SPEC, POST, resume=True)
    assert [r.status for r in reports] == ["skipped", "failed", "missing", "done"]
    bars = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scenes")]
    assert bars[-1].startswith("scenes (2 not predicted) ")
    assert " 2/4 " in bars[-1] and " 50%" in bars[-1]
