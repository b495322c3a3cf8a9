"""Postprocessor: every ``post`` key has its documented effect (thresholds, gate, minimum area)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from eoseg.config.schema import GateSpec, HeadSpec, PostSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.geo.cog import TiledRasterWriter
from eoseg.geo.products import IGNORE, mask_spec
from eoseg.geo.raster import raster_info
from eoseg.post.postprocess import Postprocessor, mask_kind

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)  # 0.25 m² per pixel


def test_binary_threshold_is_strictly_above():
    prob = np.array([[[0.2, 0.5, 0.51]]])
    assert Postprocessor(PostSpec(threshold=0.5), "binary", 1).mask(prob).tolist() == [[[0, 0, 1]]]


def test_threshold_changes_a_softmax_binary_mask_on_the_foreground_channel():
    fg = np.array([[0.3, 0.45, 0.6]])
    prob = np.stack([1 - fg, fg])
    head = HeadSpec(kind="dense", channels=2, activation="softmax")
    post = Postprocessor.for_head(PostSpec(threshold=0.5), head, TaskSpec(kind="binary"))
    assert post.kind == "binary" and post.bands == 1
    assert post.mask(prob).tolist() == [[[0, 0, 1]]]  # argmax would give the same here
    lower = Postprocessor.for_head(PostSpec(threshold=0.4), head, TaskSpec(kind="binary"))
    assert lower.mask(prob).tolist() == [[[0, 1, 1]]]  # 0.45 > 0.4: argmax could never say so


def test_multiclass_most_probable_foreground_class_above_its_threshold():
    prob = np.array(
        [
            [[0.1, 0.2, 0.5, 0.5]],  # background
            [[0.6, 0.1, 0.1, 0.35]],  # class 1
            [[0.3, 0.7, 0.4, 0.15]],  # class 2
        ]
    )
    post = Postprocessor(PostSpec(threshold=[0.0, 0.5, 0.8]), "multiclass", 3)
    assert post.mask(prob).tolist() == [[[1, 0, 0, 0]]]  # 0.7 <= 0.8 for class 2; 0.35 <= 0.5
    searched = Postprocessor(PostSpec(threshold=[0.0, 0.3, 0.8]), "multiclass", 3)
    assert searched.mask(prob).tolist() == [[[1, 0, 0, 1]]]  # a lower class-1 threshold wins pixel 3


def test_multilabel_channels_overlap_and_nan_is_nodata():
    prob = np.array([[[0.6, 0.2, np.nan]], [[0.6, 0.9, np.nan]]])
    post = Postprocessor(PostSpec(threshold=[0.5, 0.7]), "multilabel", 2)
    assert post.mask(prob).tolist() == [[[1, 0, IGNORE]], [[0, 1, IGNORE]]]


def test_mask_kind_from_the_head():
    task = TaskSpec(kind="binary")
    assert mask_kind(HeadSpec(kind="dense", channels=1), task) == "binary"
    assert mask_kind(HeadSpec(kind="dense", channels=2, activation="softmax"), task) == "binary"
    assert mask_kind(HeadSpec(kind="dense", channels=4), TaskSpec(kind="multilabel")) == "multilabel"
    assert mask_kind(HeadSpec(kind="dense", channels=5, activation="softmax"), TaskSpec(kind="multiclass")) == (
        "multiclass")


def test_wrong_number_of_thresholds_names_the_option():
    with pytest.raises(ConfigError, match=r"post\.threshold: has 3 values but the probability raster has 2"):
        Postprocessor(PostSpec(threshold=[0.1, 0.2, 0.3]), "multilabel", 2)


def test_vote_k_of_n_for_softmax_binary():
    members = [np.stack([1 - p, p]) for p in (np.array([[0.6, 0.6]]), np.array([[0.6, 0.4]]), np.array([[0.3, 0.4]]))]
    post = Postprocessor(PostSpec(threshold=0.5), "binary", 2)
    assert post.vote(members, 2).tolist() == [[[1, 0]]]
    assert post.vote(members, 1).tolist() == [[[1, 1]]]


def test_in_memory_min_area_in_square_metres_and_gate():
    prob = np.zeros((1, 8, 8))
    prob[0, :3, :3] = 0.9  # 9 px = 2.25 m² at 0.25 m² per pixel
    prob[0, 6:, 6:] = 0.9  # 4 px = 1 m²
    mask = Postprocessor(PostSpec(threshold=0.5, min_area=2.0), "binary", 1)(prob, pixel_area=0.25)
    assert mask.sum() == 9
    gated = Postprocessor(PostSpec(gate=GateSpec(threshold=0.5)), "binary", 1)
    assert gated(prob, 0.25, heads={"image_class": {"mean": [0.4]}}).sum() == 0
    assert gated(prob, 0.25, heads={"image_class": {"mean": [0.6]}}).sum() == 13


def written_mask(path, mask: np.ndarray, names=("class",)):
    info = type("G", (), {"width": mask.shape[-1], "height": mask.shape[-2],
                          "crs": rasterio.crs.CRS.from_string(UTM), "transform": TRANSFORM})
    with TiledRasterWriter(path, mask_spec(info, names)) as writer:
        writer.write_rows(0, mask)
        return writer.finish()


def test_min_area_measures_components_across_row_bands_whole(tmp_path):
    mask = np.zeros((1, 12, 10), np.uint8)
    mask[0, 2:8, 1] = 1  # 6 px, a column crossing the band borders at rows 4 and 8
    mask[0, 7, 1:4] = 1  # + 2 px: an L of 8 px crossing a border
    mask[0, 3:5, 6:8] = 1  # 4 px square split by the border at row 4
    mask[0, 10, 9] = 1  # 1 px
    mask[0, 0, 9] = IGNORE  # nodata stays nodata
    path = written_mask(tmp_path / "m.mask.tif", mask)
    # min_area 1.25 m² = 5 px: the L (8 px) stays although no band holds more than 4 of its pixels
    post = Postprocessor(PostSpec(min_area=1.25), "binary", 1)
    post.finalize(path, band_rows=4)
    with rasterio.open(path) as src:
        out = src.read()
        assert src.nodata == IGNORE and raster_info(path).transform == TRANSFORM
    expected = mask.copy()
    expected[0, 3:5, 6:8] = 0
    expected[0, 10, 9] = 0
    assert (out == expected).all()
    assert (post(mask.astype(np.float32) * (mask == 1), pixel_area=0.25)[0, 1:] == expected[0, 1:]).all()


def test_finalize_gates_multilabel_channels_from_heads_json(tmp_path):
    mask = np.ones((2, 4, 4), np.uint8)
    path = written_mask(tmp_path / "c.mask.tif", mask, names=("fish", "sugar"))
    post = Postprocessor(PostSpec(gate=GateSpec(threshold=[0.5, 0.5])), "multilabel", 2)
    post.finalize(path, {"image_class": {"kind": "image_class", "mean": [0.3, 0.8]}})
    with rasterio.open(path) as src:
        assert src.read(1).sum() == 0 and src.read(2).sum() == 16  # channel 0: 0.3 <= 0.5 -> emptied
        assert src.descriptions == ("fish", "sugar")


@pytest.mark.parametrize(("kind", "channels", "thresholds"), [
    ("binary", 1, [0.4]), ("binary", 2, [0.0, 0.3]), ("multiclass", 4, [0.0, 0.2, 0.5, 0.3]),
    ("multilabel", 3, [0.3, 0.5, 0.7]),
])
def test_one_rule_for_numpy_predictions_and_torch_validation(kind, channels, thresholds):
    """The torch path (validation during training, a batch on the device) decides every pixel as the numpy
    path (``eoseg predict``'s mask) does: same function, same thresholds, same ``p > t``."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(channels)
    prob = rng.random((2, channels, 9, 7)).astype(np.float32)
    if kind != "multilabel" and channels > 1:
        prob /= prob.sum(axis=1, keepdims=True)
    post = Postprocessor(PostSpec(threshold=thresholds if len(thresholds) > 1 else thresholds[0]), kind, channels)
    batch = post.classes(torch.from_numpy(prob)).numpy()
    layout = post.layout(torch.from_numpy(prob)).numpy()
    for b in range(2):
        assert (layout[b].astype(np.uint8) == post.mask(prob[b])).all()
        assert (batch[b] == post.classes(prob[b])).all()
        if kind == "multilabel":  # classes: the most probable label above its threshold, + 1
            on = prob[b] > np.array(thresholds)[:, None, None]
            expected = np.where(on.any(0), np.where(on, prob[b], -1).argmax(0) + 1, 0)
        else:
            expected = post.mask(prob[b])[0]
        assert (batch[b] == expected).all()
