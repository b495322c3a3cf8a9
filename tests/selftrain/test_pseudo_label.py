"""``pseudo_label``: selection rules, confidence summary, resume, and the bad inputs of issue 12."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_helpers import IdentityModel, make_bundle, write_scene  # noqa: E402

from eoseg.errors import InputError  # noqa: E402
from eoseg.selftrain import pseudo as pseudo_module  # noqa: E402
from eoseg.selftrain.pseudo import pseudo_label  # noqa: E402

QUADRANTS = {"r0-c0": 0.9, "r0-c32": 0.5, "r32-c0": 0.1, "r32-c32": 0.65}


def quadrant_scene(path: Path, values=QUADRANTS, bands: int = 1) -> Path:
    """64 x 64 float scene whose value (= the identity model's probability) is constant per 32 px quadrant."""
    array = np.zeros((bands, 64, 64), dtype=np.float32)
    for key, value in values.items():
        row, col = (int(part[1:]) for part in key.split("-"))
        array[:, row:row + 32, col:col + 32] = value
    return write_scene(path, array, nodata=None)


def run(tmp_path: Path, rule: str, values=QUADRANTS, scene: Path | None = None, mean: float = 0.0, **pseudo):
    """Pseudo-label ``scene`` (default: a new quadrant scene of ``values``) by ``rule`` into tmp_path/out, with
    the identity model normalising by ``mean`` (its probability is the scene value minus ``mean``)."""
    bundle = make_bundle(IdentityModel(), chip=32, dtype="float32", mean=mean)  # trained on float scenes like these
    config = bundle.config.model_copy(deep=True)
    config.selftrain.pseudo = config.selftrain.pseudo.model_copy(update={"rule": rule, **pseudo})
    config.predict.window = 64
    scene = scene or quadrant_scene(tmp_path / "in" / "town1.tif", values)
    return pseudo_label([bundle], [{"image": scene}], tmp_path / "out", config, progress=False)


def kept_chips(result) -> dict[str, float]:
    manifest = pd.read_parquet(result.root / "manifest.parquet")
    out = {}
    for row in manifest.to_dict("records"):
        with rasterio.open(result.root / row["target:mask"]) as src:
            out[row["chip_id"].removeprefix("town1-s1-")] = float(np.nanmean(src.read(1)))
    return out


def test_soft_rule_keeps_probabilities(tmp_path) -> None:
    result = run(tmp_path, "soft")
    chips = kept_chips(result)
    assert set(chips) == set(QUADRANTS)
    assert chips == pytest.approx(QUADRANTS, abs=1e-3)  # float16 probabilities, not binarised
    with rasterio.open(result.labels["town1"]) as src:
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
    summary = json.loads(result.summary.read_text())
    assert summary["chips"] == summary["kept_chips"] == 4
    assert summary["scenes"][0]["share_outside_band"] == pytest.approx(0.75)  # 0.9, 0.1, 0.65
    table = pd.read_csv(result.confidence)
    assert list(table.columns) == ["chip_id", "scene", "labelled_share", "mean_confidence", "max_p", "image_rule",
                                   "kept"]
    conf = dict(zip(table.chip_id.str.removeprefix("town1-s1-"), table.mean_confidence, strict=True))
    assert conf == pytest.approx({"r0-c0": 0.8, "r0-c32": 0.0, "r32-c0": 0.8, "r32-c32": 0.3}, abs=1e-3)
    scenes = pd.read_csv(result.scenes_csv)
    assert list(scenes.columns) == ["id", "image", "mask"] and scenes.id.tolist() == ["town1"]


@pytest.mark.parametrize("compress", ["zstd", "deflate"])
def test_predict_compress_decides_the_predictions_and_the_soft_labels(tmp_path, compress) -> None:
    bundle = make_bundle(IdentityModel(), chip=32, dtype="float32")
    config = bundle.config.model_copy(deep=True)
    config.predict = config.predict.model_copy(update={"window": 64, "compress": compress})
    scene = quadrant_scene(tmp_path / "in" / "town1.tif")
    result = pseudo_label([bundle], [{"image": scene}], tmp_path / "out", config, progress=False)
    for path in (tmp_path / "out" / "predictions" / "town1.prob.tif", result.labels["town1"]):
        with rasterio.open(path) as src:
            assert src.compression.name == compress and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(result.labels["town1"]) as src:
        assert np.nanmean(src.read(1)[:32, :32]) == pytest.approx(0.9, abs=1e-3)


def test_hard_rule_maps_the_band_to_ignore(tmp_path) -> None:
    chips = kept_chips(run(tmp_path, "hard"))
    # 0.5 lies in the band 0.4..0.6: that chip has no label left and is dropped
    assert chips == {"r0-c0": 1.0, "r32-c0": 0.0, "r32-c32": 1.0}


def test_image_rule_keeps_chips_confident_on_every_channel(tmp_path) -> None:
    chips = kept_chips(run(tmp_path, "image"))
    assert chips == pytest.approx({"r0-c0": 0.9, "r32-c0": 0.1}, abs=1e-3)


def test_rerun_resumes_finished_scenes(tmp_path) -> None:
    scene = quadrant_scene(tmp_path / "in" / "town1.tif")
    first = run(tmp_path, "soft", scene=scene)
    stamp = first.labels["town1"].stat().st_mtime_ns
    second = run(tmp_path, "image", scene=scene)  # same predictions, another selection: the soft labels are reused
    assert second.labels["town1"].stat().st_mtime_ns == stamp
    assert second.kept == 2


def count_predictions(monkeypatch) -> list[str]:
    """Names of the scenes that ``pseudo_label`` sends to the predictor from now on."""
    calls: list[str] = []
    real = pseudo_module.predict_scene

    def counting(*args, **kwargs):
        calls.append(args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(pseudo_module, "predict_scene", counting)
    return calls


def test_another_rule_relabels_the_kept_predictions_without_predicting_again(tmp_path, monkeypatch) -> None:
    scene = quadrant_scene(tmp_path / "in" / "town1.tif")
    run(tmp_path, "soft", scene=scene)
    calls = count_predictions(monkeypatch)
    assert kept_chips(run(tmp_path, "hard", scene=scene)) == {"r0-c0": 1.0, "r32-c0": 0.0, "r32-c32": 1.0}
    assert calls == []
    (tmp_path / "out" / "predictions" / "town1.key").unlink()  # as after a prediction that was interrupted
    assert kept_chips(run(tmp_path, "soft", scene=scene)) == pytest.approx(QUADRANTS, abs=1e-3)
    assert calls == ["town1"]


def test_another_model_or_a_rewritten_scene_predicts_again(tmp_path, monkeypatch) -> None:
    scene = quadrant_scene(tmp_path / "in" / "town1.tif")
    run(tmp_path, "soft", scene=scene)
    calls = count_predictions(monkeypatch)
    shifted = run(tmp_path, "soft", scene=scene, mean=0.05)  # another model, same rule: not a resume
    assert calls == ["town1"]
    assert kept_chips(shifted) == pytest.approx({k: v - 0.05 for k, v in QUADRANTS.items()}, abs=1e-3)
    low = dict.fromkeys(QUADRANTS, 0.2)
    assert kept_chips(run(tmp_path, "soft", values=low, mean=0.05)) == pytest.approx(  # the scene rewritten
        dict.fromkeys(QUADRANTS, 0.15), abs=1e-3)
    assert calls == ["town1", "town1"]


def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_empty_selection_names_the_share_kept_per_rule(tmp_path) -> None:
    uncertain = dict.fromkeys(QUADRANTS, 0.5)
    scene = quadrant_scene(tmp_path / "in" / "town1.tif", uncertain)
    before = digest(tmp_path / "in")
    with pytest.raises(InputError, match=r"selftrain.pseudo.rule=image keeps 0 of 4 chips; share kept per rule: "
                                         r"soft 100% of valid pixels, hard \(band 0.4..0.6\) 0% of valid pixels, "
                                         r"image \(empty < 0.3, present > 0.7\) 0% of chips; loosen the rule"):
        run(tmp_path, "image", scene=scene)
    assert digest(tmp_path / "in") == before
    assert not (tmp_path / "out" / "chips" / "manifest.parquet").exists()
    assert not (tmp_path / "out" / "summary.json").exists()


def test_scenes_whose_bands_do_not_match_the_checkpoint_are_refused_before_any_output(tmp_path) -> None:
    bundle = make_bundle(IdentityModel(), chip=32, dtype="float32")  # trained on float scenes like these
    good = quadrant_scene(tmp_path / "in" / "good.tif")
    bad = quadrant_scene(tmp_path / "in" / "bad.tif", bands=3)
    before = digest(tmp_path / "in")
    with pytest.raises(InputError, match=r"bad.tif: scene has 3 band\(s\) but the model expects 1 for image 'image'"):
        pseudo_label([bundle], [{"image": good}, {"image": bad}], tmp_path / "out", bundle.config, progress=False)
    assert digest(tmp_path / "in") == before
    assert not (tmp_path / "out").exists()
