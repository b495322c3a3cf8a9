"""Bad inputs of issue 12 as a user meets them on the command line: `eoseg pseudo-label` whose selection
keeps nothing, `eoseg prepare` with soft labels on another grid. Each is one line (exit 2, no traceback)
and leaves every input and every earlier output as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
import yaml
from affine import Affine
from reliability_helpers import TRANSFORM, UTM, hashes, run, write_checkpoint, write_scene

from eoseg.geo.raster import write_geotiff
from eoseg.selftrain.pseudo import restore_previous_set


def undecided_checkpoint(path: Path) -> Path:
    """A binary uint8 checkpoint whose mask head outputs logit 0 (p = 0.5) at every pixel."""
    write_checkpoint(path)
    saved = torch.load(path, weights_only=False)
    for key in ("model.heads.mask.head.0.weight", "model.heads.mask.head.0.bias"):
        saved["state_dict"][key] = torch.zeros_like(saved["state_dict"][key])
    torch.save(saved, path)
    return path


def test_pseudo_label_that_keeps_no_chip_names_the_share_per_rule(tmp_path, capsys) -> None:
    checkpoint = undecided_checkpoint(tmp_path / "undecided.ckpt")
    scene = write_scene(tmp_path / "town1.tif", np.full((1, 128, 128), 90, np.uint8))
    out = tmp_path / "pseudo"
    inputs = hashes(checkpoint, scene)
    code, line = run(capsys, "pseudo-label", checkpoint, scene, "--out", out, "-q", "selftrain.pseudo.rule=hard")
    assert code == 2
    assert line == (
        f"error: {out}: pseudo-labels: selftrain.pseudo.rule=hard keeps 0 of 4 chips; share kept per rule: soft "
        "100% of valid pixels, hard (band 0.4..0.6) 0% of valid pixels, image (empty < 0.3, present > 0.7) n/a "
        "under rule=hard; loosen the rule (e.g. selftrain.pseudo.rule=soft) or add scenes"
    )
    assert hashes(checkpoint, scene) == inputs
    assert not (out / "chips" / "manifest.parquet").exists() and not (out / "summary.json").exists()
    assert not (out / "config.yaml").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.is_file()]  # no temporaries


def chip_values(root: Path) -> set[float]:
    """Every target value of the chips a prepared set's manifest lists."""
    manifest = pd.read_parquet(root / "manifest.parquet")
    values: set[float] = set()
    for target in manifest["target:mask"]:
        with rasterio.open(root / target) as src:
            values |= {round(float(v), 3) for v in np.unique(src.read(1))}
    return values


def test_pseudo_label_rerun_with_another_rule_cuts_its_chips_again(tmp_path, capsys) -> None:
    """The same --out with another rule rewrites the soft labels at the same path; the chips must follow
    them (they were reused from the earlier rule: chips of p = 0.5 under a summary saying rule=hard)."""
    checkpoint = undecided_checkpoint(tmp_path / "undecided.ckpt")
    scene = write_scene(tmp_path / "town1.tif", np.full((1, 128, 128), 90, np.uint8))
    out = tmp_path / "pseudo"
    assert run(capsys, "pseudo-label", checkpoint, scene, "--out", out, "-q", "selftrain.pseudo.rule=soft")[0] == 0
    assert chip_values(out / "chips") == {0.5}
    hard = ["selftrain.pseudo.rule=hard", "selftrain.pseudo.low=0.3", "selftrain.pseudo.high=0.45"]
    assert run(capsys, "pseudo-label", checkpoint, scene, "--out", out, "-q", *hard)[0] == 0
    assert chip_values(out / "chips") == {1.0}  # p = 0.5 > high
    assert json.loads((out / "summary.json").read_text())["rule"]["rule"] == "hard"
    assert not (out / ".previous-set").exists()  # the replaced set is gone once the new one is finished


def test_pseudo_label_rerun_that_keeps_no_chip_leaves_the_earlier_set(tmp_path, capsys) -> None:
    """A set made with rule=soft, then the same --out with rule=hard that keeps nothing: the earlier soft
    labels, chips, manifest and summary are what training reads; none of them may change."""
    checkpoint = undecided_checkpoint(tmp_path / "undecided.ckpt")
    scene = write_scene(tmp_path / "town1.tif", np.full((1, 128, 128), 90, np.uint8))
    out = tmp_path / "pseudo"
    assert run(capsys, "pseudo-label", checkpoint, scene, "--out", out, "-q", "selftrain.pseudo.rule=soft")[0] == 0
    earlier = hashes(out, checkpoint, scene)
    code, line = run(capsys, "pseudo-label", checkpoint, scene, "--out", out, "-q", "selftrain.pseudo.rule=hard")
    assert code == 2 and "selftrain.pseudo.rule=hard keeps 0 of 4 chips" in line
    assert hashes(out, checkpoint, scene) == earlier


def test_set_left_aside_by_a_killed_run_is_put_back(tmp_path) -> None:
    """A run killed while it replaced a set leaves the finished set in .previous-set/ and partial new items:
    the next run starts from the finished set."""
    out = tmp_path / "pseudo"
    (out / ".previous-set" / "chips").mkdir(parents=True)
    (out / ".previous-set" / "chips" / "manifest.parquet").write_text("finished")
    (out / ".previous-set" / "summary.json").write_text("{}")
    (out / "chips").mkdir()
    (out / "chips" / "half-cut.tif").write_text("partial")
    (out / "labels").mkdir()  # the killed run's labels; the finished set had none moved aside
    restore_previous_set(out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "chips", "chips/manifest.parquet", "labels", "summary.json"]
    assert (out / "chips" / "manifest.parquet").read_text() == "finished"


def test_prepare_with_soft_labels_on_another_grid_is_one_line(tmp_path, capsys) -> None:
    image = write_scene(tmp_path / "in" / "scene.tif", np.full((3, 64, 64), 90, np.uint8))
    coarse = Affine(1.0, 0, TRANSFORM.c, 0, -1.0, TRANSFORM.f)  # 1 m pixels, the image has 0.5 m
    soft = write_geotiff(tmp_path / "in" / "scene.soft.tif", np.full((1, 64, 64), 0.7, np.float32), UTM, coarse,
                         float("nan"))
    config = tmp_path / "soft.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"root": str(tmp_path / "chips"), "folds": 1, "chips": {"size": 32, "overlap": 0},
                 "scenes": [{"id": "town", "images": {"image": str(image)}, "targets": {"mask": str(soft)}}],
                 "targets": {"mask": {"kind": "raster", "soft": True}}},
        "model": {"heads": {"mask": {"channels": 1, "activation": "sigmoid"}}},
    }))
    before = hashes(tmp_path)
    code, line = run(capsys, "prepare", config, "--quiet")
    assert code == 2
    assert line == (
        f"error: {soft}: soft labels of target 'mask' are on another grid (64x64 px of 1 x 1, EPSG:32616, origin "
        "740000, 3740000) than image scene.tif of scene town (64x64 px of 0.5 x 0.5, EPSG:32616, origin 740000, "
        "3740000); soft labels must be written on their image's grid (as eoseg pseudo-label does); check that the "
        "scene list pairs the right files"
    )
    assert hashes(tmp_path) == before and not (tmp_path / "chips").exists()
