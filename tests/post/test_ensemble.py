"""Ensembles of rasters written earlier: weighted mean, k-of-n vote, nodata, grid checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from eoseg.errors import ConfigError, InputError
from eoseg.geo.products import mask_classes
from eoseg.geo.raster import write_geotiff
from eoseg.post.ensemble import ensemble_rasters

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)


def write(tmp_path, name, array, nodata=None, transform=TRANSFORM):
    return write_geotiff(tmp_path / name, np.asarray(array)[None], UTM, transform, nodata)


def test_mean_of_uint8_probabilities_keeps_uint8_and_the_grid(tmp_path):
    a = write(tmp_path, "a.tif", np.full((20, 30), 100, np.uint8))
    b = write(tmp_path, "b.tif", np.full((20, 30), 210, np.uint8))
    out = ensemble_rasters([a, b], tmp_path / "mean.tif", "mean", band_rows=7)
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "uint8" and src.transform == TRANSFORM and src.crs == UTM
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert (src.read(1) == 155).all()


@pytest.mark.parametrize(("written", "expected"), [("zstd", "zstd"), ("deflate", "deflate"), ("lzw", "zstd"),
                                                   ("none", "zstd")])
def test_the_ensemble_takes_the_compression_predict_wrote_its_inputs_with(tmp_path, written, expected):
    """``predict.compress`` (zstd or deflate, what the inputs carry) decides the ensemble's COG too; an input
    compressed otherwise (here LZW, or not at all) gives the default, zstd."""
    a = write_geotiff(tmp_path / "a.tif", np.full((1, 20, 30), 100, np.uint8), UTM, TRANSFORM, None, written)
    b = write_geotiff(tmp_path / "b.tif", np.full((1, 20, 30), 210, np.uint8), UTM, TRANSFORM, None, "zstd")
    for mode in ("mean", "vote"):
        out = ensemble_rasters([a, b], tmp_path / f"{mode}.tif", mode)
        with rasterio.open(a) as src:
            assert (src.compression.name if src.compression else "none") == written
        with rasterio.open(out) as src:
            assert src.compression.name == expected and src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
            assert (src.read(1) == (155 if mode == "mean" else 1)).all()


def test_weighted_mean_of_float_probabilities_skips_nodata_inputs(tmp_path):
    a = np.full((4, 4), 0.2, np.float32)
    b = np.full((4, 4), 0.8, np.float32)
    a[0, 0] = np.nan
    a[1, 1] = b[1, 1] = np.nan
    out = ensemble_rasters(
        [write(tmp_path, "a.tif", a, np.nan), write(tmp_path, "b.tif", b, np.nan)],
        tmp_path / "m.tif",
        "mean",
        weights=[3, 1],
    )
    with rasterio.open(out) as src:
        result = src.read(1)
    assert result[2, 2] == pytest.approx((3 * 0.2 + 0.8) / 4, abs=1e-3)  # float probabilities: float16
    assert result[0, 0] == pytest.approx(0.8, abs=1e-3)  # only b is valid there
    assert np.isnan(result[1, 1])


def test_k_of_n_vote_of_masks(tmp_path):
    masks = [np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]]), np.array([[1, 0, 0, 0]])]
    paths = [write(tmp_path, f"m{i}.tif", m.astype(np.uint8), 255) for i, m in enumerate(masks)]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v2.tif", "vote", min_votes=2)) as src:
        assert src.read(1).tolist() == [[1, 0, 0, 0]]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v1.tif", "vote", min_votes=1)) as src:
        assert src.read(1).tolist() == [[1, 1, 1, 0]]
        assert src.nodata == 255


@pytest.mark.parametrize(("classes", "kept"), [(["background", "building"], ["background", "building"]),
                                                ("background,road,building", [])])
def test_a_vote_of_class_masks_keeps_their_class_names_while_they_still_hold(tmp_path, classes, kept):
    """A vote is 0/1: the binary masks' names still say what 1 is, a multiclass mask's (given here as another
    tool writes the tag, comma-separated) would call every 1 'road'."""
    paths = []
    for i in range(2):
        paths.append(write(tmp_path, f"m{i}.tif", np.array([[1, 0], [0, 1]], np.uint8), 255))
        with rasterio.open(paths[-1], "r+") as dst:
            dst.update_tags(classes=classes if isinstance(classes, str) else json.dumps(classes))
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v.tif", "vote")) as src:
        assert mask_classes(src) == kept
        assert src.read(1).tolist() == [[1, 0], [0, 1]]


def test_vote_of_probabilities_with_a_threshold(tmp_path):
    probs = [np.array([[0.9, 0.6, 0.1]]), np.array([[0.7, 0.4, 0.2]]), np.array([[0.8, 0.7, 0.9]])]
    paths = [write(tmp_path, f"p{i}.tif", p.astype(np.float32)) for i, p in enumerate(probs)]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v.tif", "vote", threshold=0.5)) as src:
        assert src.read(1).tolist() == [[1, 1, 0]]  # default majority: 2 of 3


def named(path, descriptions=None, classes=None, mask_kind=None):
    with rasterio.open(path, "r+") as dst:
        if descriptions:
            dst.descriptions = descriptions
        if classes:
            dst.update_tags(classes=json.dumps(classes))
        if mask_kind:
            dst.update_tags(mask_kind=mask_kind)
    return path


def test_a_threshold_vote_of_probabilities_keeps_their_class_names(tmp_path):
    """predict's 1-band (sigmoid) prob.tif names the mask it gives in its classes tag, as its mask.tif does:
    the vote's mask keeps it (an input naming nothing takes the others' names), so evaluate reports 'building'."""
    probs = [np.array([[0.9, 0.6, 0.1]]), np.array([[0.7, 0.4, 0.2]]), np.array([[0.8, 0.7, 0.9]])]
    paths = [write(tmp_path, f"p{i}.tif", p.astype(np.float32)) for i, p in enumerate(probs)]
    for path in paths[1:]:
        named(path, ("building",), ["background", "building"])
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v.tif", "vote", threshold=0.5)) as src:
        assert mask_classes(src) == ["background", "building"]
        assert src.descriptions == ("building",)
        assert src.read(1).tolist() == [[1, 1, 0]]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "m.tif", "mean")) as src:
        assert mask_classes(src) == ["background", "building"]  # a mean is still those probabilities


def test_a_several_band_threshold_vote_names_its_bands_not_classes(tmp_path):
    """Each band of a 2-band probability raster that does not say its mask layout (no mask_kind tag: another
    tool's) is voted on its own: a 0/1 stack whose bands the descriptions name; the classes tag (values of
    one class band) would not hold."""
    prob = np.stack([np.full((2, 3), 0.3), np.full((2, 3), 0.7)]).astype(np.float32)
    paths = [named(write_geotiff(tmp_path / f"p{i}.tif", prob, UTM, TRANSFORM, None), ("background", "building"),
                   ["background", "building"]) for i in range(2)]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v.tif", "vote", threshold=0.5)) as src:
        assert mask_classes(src) == []
        assert src.descriptions == ("background", "building")
        assert src.read().tolist() == [[[0] * 3] * 2, [[1] * 3] * 2]


def test_a_threshold_vote_of_softmax_probabilities_is_predicts_class_mask(tmp_path):
    """predict's 2-band softmax prob.tif says its mask is binary (mask_kind tag): the vote thresholds the
    building band as predict does and gives its 1-band class mask, named by the classes, not a 0/1 stack."""
    building = [np.array([[0.9, 0.6, 0.1, 0.5]]), np.array([[0.7, 0.4, 0.2, 0.55]]), np.array([[0.8, 0.7, 0.9, 0.2]])]
    paths = [named(write_geotiff(tmp_path / f"p{i}.tif", np.stack([1 - b, b]).astype(np.float32), UTM, TRANSFORM,
                                 None), ("background", "building"), ["background", "building"], "binary")
             for i, b in enumerate(building)]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v.tif", "vote", threshold=0.5)) as src:
        assert (src.count, src.descriptions, mask_classes(src)) == (1, ("class",), ["background", "building"])
        assert src.read(1).tolist() == [[1, 1, 0, 0]]  # 2 of 3 with p > 0.5 (0.5 itself is not above it)
    with rasterio.open(ensemble_rasters(paths, tmp_path / "any.tif", "vote", threshold=0.5, min_votes=1)) as src:
        assert src.read(1).tolist() == [[1, 1, 1, 1]]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "m.tif", "mean")) as src:
        assert src.tags()["mask_kind"] == "binary"  # a mean gives the same mask layout


def test_a_threshold_vote_of_multilabel_probabilities_stays_band_by_band(tmp_path):
    prob = np.stack([np.full((2, 3), 0.3), np.full((2, 3), 0.7)]).astype(np.float32)
    paths = [named(write_geotiff(tmp_path / f"p{i}.tif", prob, UTM, TRANSFORM, None), ("fish", "sugar"), None,
                   "multilabel") for i in range(2)]
    with rasterio.open(ensemble_rasters(paths, tmp_path / "v.tif", "vote", threshold=0.5)) as src:
        assert src.descriptions == ("fish", "sugar")
        assert src.read().tolist() == [[[0] * 3] * 2, [[1] * 3] * 2]


@pytest.mark.parametrize(("kinds", "message"), [
    (("multiclass", "multiclass"), r"a\.tif: multiclass probabilities \(3 classes\): a k-of-n vote needs binary "
                                   r"or multilabel masks \(as predict\.vote\); average them with --mode mean instead"),
    (("binary", "multilabel"), r"b\.tif: its mask_kind tag 'multilabel' differ from a\.tif's 'binary'; "
                               r"combine probabilities of models with the same head layout \(softmax or sigmoid\)"),
    (("binary", "softmax"), r"b\.tif: its mask_kind tag 'softmax' is not one of binary, multiclass, multilabel; "
                            r"fix or remove the tag"),
])
def test_threshold_votes_the_mask_rule_cannot_give_are_refused(tmp_path, kinds, message):
    prob = np.full((3, 4, 4), 1 / 3, np.float32)
    paths = [named(write_geotiff(tmp_path / f"{n}.tif", prob, UTM, TRANSFORM, None), mask_kind=kind)
             for n, kind in zip("ab", kinds, strict=True)]
    (tmp_path / "out.tif").write_bytes(b"earlier")
    with pytest.raises(InputError, match=message):
        ensemble_rasters(paths, tmp_path / "out.tif", "vote", threshold=0.5)
    assert (tmp_path / "out.tif").read_bytes() == b"earlier"


@pytest.mark.parametrize(("mode", "first", "second", "what"), [
    ("vote", (None, ["background", "building"]), (None, ["background", "road"]), "classes tag"),
    ("vote", (("building",), None), (("road",), None), "band descriptions"),
    ("mean", (("background", "building"), None), (("building", "background"), None), "band descriptions"),
])
def test_inputs_naming_different_classes_are_refused(tmp_path, mode, first, second, what):
    bands = np.ones((len(first[0] or [None]), 4, 4), np.uint8)
    a = named(write_geotiff(tmp_path / "a.tif", bands, UTM, TRANSFORM, None), *first)
    b = named(write_geotiff(tmp_path / "b.tif", bands, UTM, TRANSFORM, None), *second)
    (tmp_path / "out.tif").write_bytes(b"earlier")
    with pytest.raises(InputError, match=rf"b\.tif: its {what} \[.*\] differ from a\.tif's \[.*\]; combine "
                                         "rasters of models with the same classes, in the same order"):
        ensemble_rasters([a, b], tmp_path / "out.tif", mode)
    assert (tmp_path / "out.tif").read_bytes() == b"earlier"


def test_rasters_on_different_grids_are_refused(tmp_path):
    a = write(tmp_path, "a.tif", np.zeros((4, 4), np.uint8))
    b = write(tmp_path, "b.tif", np.zeros((4, 4), np.uint8), transform=TRANSFORM @ Affine.translation(1, 0))
    with pytest.raises(InputError, match=r"b\.tif: not on the grid of a\.tif .*warp it first"):
        ensemble_rasters([a, b], tmp_path / "o.tif")


def test_bad_min_votes_missing_input_and_unwritable_output(tmp_path):
    a = write(tmp_path, "a.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match=r"--min-votes: 3 is not between 1 and the number of rasters \(2\)"):
        ensemble_rasters([a, a], tmp_path / "o.tif", "vote", min_votes=3)
    with pytest.raises(InputError, match=r"missing\.tif: raster file does not exist"):
        ensemble_rasters([a, tmp_path / "missing.tif"], tmp_path / "o.tif")
    (tmp_path / "blocker").write_text("")
    with pytest.raises(InputError, match=r"blocker is a file, not a folder"):
        ensemble_rasters([a, a], tmp_path / "blocker" / "o.tif")
    assert not (tmp_path / "o.tif").exists()
