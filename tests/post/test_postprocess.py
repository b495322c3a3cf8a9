"""Postprocessor: every ``post`` key has its documented effect (thresholds, gate, minimum area).

``finalize`` works by square blocks; its cases are compared with ``scipy.ndimage.label`` (4-connected) over the
whole array, with blocks of a few pixels so that components cross many block borders, in both directions.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio
from affine import Affine
from scipy import ndimage

from eoseg.config.schema import GateSpec, HeadSpec, PostSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.geo.cog import TiledRasterWriter
from eoseg.geo.polygonize import block_windows
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


def test_min_area_measures_components_across_block_borders_whole(tmp_path):
    mask = np.zeros((1, 12, 10), np.uint8)
    mask[0, 2:8, 1] = 1  # 6 px, a column crossing the block borders at rows 4 and 8
    mask[0, 7, 1:4] = 1  # + 2 px: an L of 8 px crossing a border
    mask[0, 3:5, 6:8] = 1  # 4 px square split by the border at row 4
    mask[0, 10, 9] = 1  # 1 px
    mask[0, 0, 9] = IGNORE  # nodata stays nodata
    path = written_mask(tmp_path / "m.mask.tif", mask)
    # min_area 1.25 m² = 5 px: the L (8 px) stays although no 4x4 block holds more than 4 of its pixels
    post = Postprocessor(PostSpec(min_area=1.25), "binary", 1)
    post.finalize(path, block=4)
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


# ---------------------------------------------------------------- finalize by blocks = whole raster
PIXEL_M2 = 0.25  # written_mask's grid: 0.5 m pixels
FOUR = ndimage.generate_binary_structure(2, 1)


def whole_raster(mask: np.ndarray, post: Postprocessor, heads=None) -> np.ndarray:
    """The reference: gate, then every 4-connected component of the whole array under its limit removed."""
    out = mask.copy()
    gated = post.gated_layers(heads) if post.post.gate is not None else set()
    limits = post.min_pixels(PIXEL_M2)
    for i, (band, value, _) in enumerate(post.layers()):
        on = mask[band] == value
        if i in gated:
            out[band][on] = 0
            continue
        labels, _ = ndimage.label(on, structure=FOUR)
        sizes = np.bincount(labels.ravel())
        small = sizes < limits[i]
        small[0] = False
        out[band][small[labels]] = 0
    return out


def finalized(tmp_path, mask: np.ndarray, post: Postprocessor, block: int, heads=None, names=("class",)) -> np.ndarray:
    path = written_mask(tmp_path / f"b{block}.mask.tif", mask, names=names)
    post.finalize(path, heads, block=block)
    with rasterio.open(path) as src:
        assert src.nodata == IGNORE and src.descriptions == names
        return src.read()


def draw(shape: tuple[int, int], *cells: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((1, *shape), np.uint8)
    for r, c in cells:
        mask[0, r, c] = 1
    return mask


def spiral(size: int) -> np.ndarray:
    """A one-pixel-wide square spiral inwards from the top-left corner (walls one pixel apart)."""
    grid = np.zeros((size, size), np.uint8)
    lengths = [size - 1] * 3 + [n for n in range(size - 3, 0, -2) for _ in range(2)]
    r = c = 0
    grid[r, c] = 1
    for k, length in enumerate(lengths):
        dr, dc = [(0, 1), (1, 0), (0, -1), (-1, 0)][k % 4]
        for _ in range(length):
            r, c = r + dr, c + dc
            grid[r, c] = 1
    return grid[None]


def test_u_shape_whose_arms_meet_only_in_another_block_is_one_component(tmp_path):
    # arms in columns 1 and 6 (blocks 0 and 1 of side 4), joined only by row 9 (block row 2): 8 + 8 + 4 = 20 px
    mask = np.zeros((1, 12, 8), np.uint8)
    mask[0, 1:10, 1] = 1
    mask[0, 1:10, 6] = 1
    mask[0, 9, 1:7] = 1
    mask[0, 0, 3] = 1  # 1 px alone
    post = Postprocessor(PostSpec(min_area=19 * PIXEL_M2), "binary", 1)  # 19 px: only the whole U passes
    expected = mask.copy()
    expected[0, 0, 3] = 0
    for block in (1, 2, 3, 4, 5):
        assert (finalized(tmp_path, mask, post, block) == expected).all(), block
    assert (whole_raster(mask, post) == expected).all()


def test_spiral_crossing_many_blocks_is_kept_whole_or_removed_whole(tmp_path):
    mask = spiral(23)
    labels, n = ndimage.label(mask[0], structure=FOUR)
    assert n == 1  # the spiral is one 4-connected line
    size = int(mask.sum())
    keep = Postprocessor(PostSpec(min_area=size * PIXEL_M2), "binary", 1)
    drop = Postprocessor(PostSpec(min_area=(size + 1) * PIXEL_M2), "binary", 1)
    for block in (2, 3, 5, 8):
        assert (finalized(tmp_path, mask, keep, block) == mask).all(), block
        assert finalized(tmp_path, mask, drop, block).sum() == 0, block


def test_touching_only_at_a_corner_is_not_connected_also_at_a_block_corner(tmp_path):
    # two 2x2 squares meeting diagonally at the corner shared by four 4x4 blocks (pixels (3, 3) and (4, 4)),
    # and two more meeting diagonally across a vertical block border only
    cells = [(2, 2), (2, 3), (3, 2), (3, 3), (4, 4), (4, 5), (5, 4), (5, 5),
             (0, 6), (0, 7), (1, 6), (1, 7), (2, 8), (2, 9), (3, 8), (3, 9)]
    mask = draw((8, 12), *cells)
    post = Postprocessor(PostSpec(min_area=5 * PIXEL_M2), "binary", 1)  # 5 px: every 4 px square goes
    for block in (4, 64):  # across block borders and corners, and inside one block
        assert finalized(tmp_path, mask, post, block).sum() == 0, block
    assert (whole_raster(mask, post) == 0).all()
    eight = ndimage.label(mask[0], structure=np.ones((3, 3)))[1]
    assert eight == 2  # 8-connected they would be two components of 8 px, and kept


def test_per_class_limits_of_a_multiclass_mask(tmp_path):
    rng = np.random.default_rng(3)
    mask = rng.integers(0, 4, (1, 19, 23)).astype(np.uint8)
    mask[0, ::5, ::7] = IGNORE
    # classes next to each other are separate components; each class has its own limit
    post = Postprocessor(PostSpec(min_area=[0.0, 3 * PIXEL_M2, 0.0, 6 * PIXEL_M2]), "multiclass", 4)
    expected = whole_raster(mask, post)
    assert (expected != mask).any() and (expected[mask == 2] == 2).all()  # class 2: no limit, kept
    for block in (1, 4, 7, 64):
        out = finalized(tmp_path, mask, post, block)
        assert (out == expected).all(), block
        assert ((out == IGNORE) == (mask == IGNORE)).all()


def test_multilabel_layers_have_their_own_components_and_limits_and_gate(tmp_path):
    rng = np.random.default_rng(5)
    mask = (rng.random((3, 17, 21)) < 0.55).astype(np.uint8)
    mask[:, 8, 3:9] = IGNORE  # nodata on every band: splits components, stays nodata
    names = ("fish", "flower", "gravel")
    post = Postprocessor(PostSpec(min_area=[4 * PIXEL_M2, 20 * PIXEL_M2, 2 * PIXEL_M2],
                                  gate=GateSpec(threshold=[0.5, 0.5, 0.9])), "multilabel", 3)
    heads = {"image_class": {"kind": "image_class", "mean": [0.6, 0.7, 0.8]}}  # gravel: 0.8 <= 0.9, emptied
    expected = whole_raster(mask, post, heads)
    assert expected[2].max() == IGNORE and (expected[2] != IGNORE).sum() == (expected[2] == 0).sum()
    for block in (3, 6, 32):
        out = finalized(tmp_path, mask, post, block, heads, names)
        assert (out == expected).all(), block
        assert (out[:, 8, 3:9] == IGNORE).all()


@pytest.mark.parametrize("seed", range(4))
def test_random_masks_match_labelling_the_whole_raster(tmp_path, seed):
    """Near the percolation density (59 %) components wander across many blocks."""
    rng = np.random.default_rng(seed)
    height, width = rng.integers(9, 40, 2)
    mask = (rng.random((1, height, width)) < 0.59).astype(np.uint8)
    mask[rng.random((1, height, width)) < 0.03] = IGNORE
    sizes = np.bincount(ndimage.label(mask[0] == 1, structure=FOUR)[0].ravel())[1:]
    limit = float(np.median(sizes)) + 1  # about half of the components go
    post = Postprocessor(PostSpec(min_area=limit * PIXEL_M2), "binary", 1)
    expected = whole_raster(mask, post)
    assert 0 < (expected == 1).sum() < (mask == 1).sum()
    for block in (1, 2, 5, int(rng.integers(3, 12)), 64):
        assert (finalized(tmp_path, mask, post, block) == expected).all(), block


def test_blocks_cover_the_grid_once():
    windows = list(block_windows(5, 7, 3))
    assert [(w.row_off, w.col_off, w.height, w.width) for w in windows] == [
        (0, 0, 3, 3), (0, 3, 3, 3), (0, 6, 3, 1), (3, 0, 2, 3), (3, 3, 2, 3), (3, 6, 2, 1)]


def test_a_bad_block_size_is_refused_before_the_mask_is_touched(tmp_path):
    path = written_mask(tmp_path / "m.mask.tif", draw((4, 4), (1, 1)))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    post = Postprocessor(PostSpec(min_area=1.0), "binary", 1)
    with pytest.raises(ValueError, match="^block must be a positive number of pixels, got 0$"):
        post.finalize(path, block=0)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mask.tif"]


def test_min_area_remembers_block_border_labels_only(tmp_path):
    """Memory of the component pass: labels inside a block are not kept (a noisy mask has ~one component per
    few pixels); only those on a border shared with another block, and the result is still exact."""
    from eoseg.post.postprocess import _small_components

    rng = np.random.default_rng(5)
    mask = (rng.random((1, 32, 32)) > 0.6).astype(np.uint8)  # many specks and a few larger components
    post = Postprocessor(PostSpec(min_area=3 * PIXEL_M2), "binary", 1)
    path = written_mask(tmp_path / "n.mask.tif", mask)
    windows = block_windows(32, 32, 16)
    small = _small_components(path, post.layers(), [0], post.min_pixels(PIXEL_M2), windows)[0]
    _, components = ndimage.label(mask[0], structure=FOUR)
    border = np.zeros((32, 32), bool)
    border[[15, 16], :] = border[:, [15, 16]] = True  # the rows and columns on the 4 blocks' shared edges
    kept = sum(len(b) for b in small.borders)  # each pixel on a shared edge: one label of its block at most
    assert len(small.too_small) == kept <= mask[0][border].sum() and kept < components / 2
    assert (finalized(tmp_path, mask, post, 16) == whole_raster(mask, post)).all()
