"""Window layout and blending: every pixel covered once, weights positive, an identity model reproduced
(to float32 rounding: the accumulators are float32), open tiles bounded by the shorter side."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eoseg.errors import ConfigError
from eoseg.inference.blend import WEIGHT_FLOOR, BlendAccumulator, weight_window
from eoseg.inference.windows import WindowLayout, window_starts


@st.composite
def layouts(draw: st.DrawFn) -> WindowLayout:
    size = draw(st.integers(4, 80))
    overlap = draw(st.integers(0, size - max(1, size // 4)))  # up to 16 windows on a pixel
    order = draw(st.sampled_from(["auto", "rows", "columns"]))
    return WindowLayout(draw(st.integers(1, 260)), draw(st.integers(1, 260)), size, overlap, order)


def blend_through(layout: WindowLayout, scene: np.ndarray, valid: np.ndarray, kind: str = "hann", tile: int = 32):
    """Cut ``scene`` into the layout's windows (padded), blend them back, and return the result."""
    acc = BlendAccumulator(layout, {"x": scene.shape[0]}, kind, tile=tile)
    pad = layout.size
    padded = np.pad(scene, ((0, 0), (0, pad), (0, pad)))
    padded_valid = np.pad(valid, ((0, pad), (0, pad)))
    out = np.full(scene.shape, -1.0, dtype=np.float32)
    out_valid = np.zeros(valid.shape, dtype=bool)
    written = np.zeros(valid.shape, dtype=int)
    for w in layout:
        sl = (slice(w.row_off, w.row_off + w.size), slice(w.col_off, w.col_off + w.size))
        for t in acc.add(w, {"x": padded[(slice(None), *sl)]}, padded_valid[sl]):
            assert t.row_off % tile == 0 and t.col_off % tile == 0
            region = (slice(t.row_off, t.row_off + t.height), slice(t.col_off, t.col_off + t.width))
            out[(slice(None), *region)] = t.values["x"]
            out_valid[region] = t.valid
            written[region] += 1
    assert (written == 1).all() and acc.finished  # every pixel handed out exactly once
    return out, out_valid, acc


@settings(max_examples=60, deadline=None)
@given(layouts(), st.sampled_from(["hann", "cosine", "triangular", "uniform"]), st.integers(0, 2**31))
def test_blend_covers_every_pixel_and_reproduces_identity(layout: WindowLayout, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scene = rng.random((2, layout.height, layout.width), dtype=np.float32)
    valid = np.ones((layout.height, layout.width), dtype=bool)
    out, out_valid, acc = blend_through(layout, scene, valid, kind)
    assert out_valid.all()  # sum of weights > 0 on every pixel, borders and last row/column included
    np.testing.assert_allclose(out, scene, rtol=_rtol(layout))
    # memory: the open tiles span a band of windows across the shorter side (plus one tile), never more
    tiles = -(-max(layout.height, layout.width) // 32) if layout.order != "auto" else -(-min(
        layout.height, layout.width) // 32)
    assert acc.peak_open <= tiles * (-(-layout.size // 32) + 2)


@settings(max_examples=40, deadline=None)
@given(layouts(), st.integers(0, 2**31))
def test_nodata_pixels_stay_nodata_and_do_not_pollute(layout: WindowLayout, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scene = rng.random((1, layout.height, layout.width), dtype=np.float32)
    valid = rng.random((layout.height, layout.width)) > 0.3
    scene[:, ~valid] = 1e6  # what a model might output on nodata input: must not leak into neighbours
    out, out_valid, _ = blend_through(layout, scene, valid)
    assert (out_valid == valid).all()
    assert np.isnan(out[:, ~valid]).all()
    np.testing.assert_allclose(out[:, valid], scene[:, valid], rtol=_rtol(layout))


def _rtol(layout: WindowLayout) -> float:
    """float32 sums: about one rounding (2**-24 relative) per window on a pixel, plus the division."""
    per_axis = -(-layout.size // layout.stride)
    return 2.0**-23 * (per_axis**2 + 2)


def test_wide_and_tall_scenes_keep_the_same_few_tiles_open() -> None:
    """Memory does not grow with the longer side: a 64 x 4000 and a 4000 x 64 scene hold as many open tiles
    as a 64 x 500 one (window 32, overlap 8, tiles of 16)."""
    peaks = []
    for height, width in ((64, 4000), (4000, 64), (64, 500)):
        layout = WindowLayout(height, width, 32, 8)
        acc = BlendAccumulator(layout, {"x": 1}, tile=16)
        for w in layout:
            acc.add(w, {"x": np.ones((1, 32, 32), np.float32)}, np.ones((32, 32), bool))
        assert acc.finished
        peaks.append(acc.peak_open)
    assert peaks[0] == peaks[1] == peaks[2] <= 4 * 3  # 4 tiles across, 3 tile bands open at most


def test_window_starts_by_hand() -> None:
    assert window_starts(1000, 512, 384) == [0, 384, 488]  # last window moved back to end at 1000
    assert window_starts(896, 512, 384) == [0, 384]
    assert window_starts(100, 512, 384) == [0]  # smaller than a window: one padded window
    layout = WindowLayout(1000, 100, 512, 128)
    assert [(w.row_off, w.band) for w in layout] == [(0, 0), (384, 1), (488, 2)]  # tall: row bands
    wide = WindowLayout(100, 1000, 512, 128)
    assert [(w.col_off, w.band) for w in wide] == [(0, 0), (384, 1), (488, 2)]  # wide: column bands


def test_part_splits_each_band_of_a_strip_into_contiguous_runs() -> None:
    """WindowLayout.part: 9 windows across a 4,096-px band, 2 parts: the first 5 in part 0, the last 4 in part 1;
    with strips of 2,048 px, each strip's band is split on its own (column bands walk the same way)."""
    layout = WindowLayout(1024, 4096, 512, 64, order="rows", strip=None)
    assert [layout.part(w, 2) for w in layout] == [0] * 5 + [1] * 4 + [0] * 5 + [1] * 4 + [0] * 5 + [1] * 4
    assert [layout.part(w, 3) for w in layout][:9] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert {layout.part(w, 1) for w in layout} == {0}
    strips = WindowLayout(512, 4096, 512, 64, order="rows", strip=2048)
    assert [len(p) for p in strips.strips] == [5, 4]
    assert [(w.strip, strips.part(w, 2)) for w in strips] == [(0, 0)] * 3 + [(0, 1)] * 2 + [(1, 0)] * 2 + [(1, 1)] * 2
    columns = WindowLayout(4096, 1024, 512, 64, order="columns", strip=None)
    assert [columns.part(w, 2) for w in columns][:9] == [0] * 5 + [1] * 4


@pytest.mark.parametrize("kind", ["hann", "cosine", "triangular", "uniform"])
def test_weight_window_positive_smooth_and_symmetric(kind: str) -> None:
    w = weight_window(64, kind)
    assert w.min() >= WEIGHT_FLOOR**2 and w.max() <= 1.0
    np.testing.assert_array_equal(w, w[::-1, ::-1])
    np.testing.assert_array_equal(w, w.T)
    if kind != "uniform":
        assert w[32, 32] > 0.95 and w[0, 0] < 0.01  # largest in the middle, small at the borders


def test_overlap_must_be_smaller_than_window() -> None:
    with pytest.raises(ConfigError, match=r"predict.overlap: must be in \[0, window\)"):
        WindowLayout(100, 100, 64, 64)


# ---------------------------------------------------------------- strip walk = band walk, bounded tiles
def walk(layout: WindowLayout, channels: int, seed: int, tile: int, spill_dir=None):
    """Blend per-window random outputs (a window's values depend on the window only, not on the walk) with
    nodata, and return the scene's values, validity and the accumulator."""
    rng = np.random.default_rng(seed)
    valid = rng.random((layout.height + layout.size, layout.width + layout.size)) > 0.2
    values = np.zeros((channels, layout.height, layout.width), np.float32)
    out_valid = np.zeros((layout.height, layout.width), bool)
    with BlendAccumulator(layout, {"x": channels}, tile=tile, spill_dir=spill_dir) as acc:
        for w in layout:
            window = np.random.default_rng([seed, w.index]).normal(size=(channels, w.size, w.size))
            sl = (slice(w.row_off, w.row_off + w.size), slice(w.col_off, w.col_off + w.size))
            for t in acc.add(w, {"x": window.astype(np.float32)}, valid[sl]):
                region = (slice(t.row_off, t.row_off + t.height), slice(t.col_off, t.col_off + t.width))
                values[(slice(None), *region)] = t.values["x"]
                out_valid[region] = t.valid
        assert acc.finished
    return values, out_valid, acc


@settings(max_examples=40, deadline=None)
@given(layouts(), st.integers(1, 120), st.sampled_from([8, 16, 32]), st.integers(0, 2**31))
def test_strip_walk_gives_the_band_walk_bits(layout: WindowLayout, strip: int, tile: int, seed: int) -> None:
    """float32 sums depend on their order: every tile sums its windows in the band walk's order, also when
    the walk goes strip by strip and the tiles on strip borders wait in the temporary file."""
    bands = WindowLayout(layout.height, layout.width, layout.size, layout.overlap, layout.order, strip=None)
    strips = WindowLayout(layout.height, layout.width, layout.size, layout.overlap, layout.order, strip=strip)
    assert sorted(w.index for w in strips) == [w.index for w in bands] == list(range(len(bands)))
    expected, expected_valid, _ = walk(bands, 2, seed, tile)
    got, got_valid, acc = walk(strips, 2, seed, tile)
    assert (got_valid == expected_valid).all()
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))  # bits, NaN included
    assert acc.spill_closed and (len(strips.strips) > 1 or acc.spilled_peak == 0)  # whole bands: no file


def test_open_tiles_do_not_grow_with_either_side(tmp_path) -> None:
    """With strips of 160 px (window 32, overlap 8, tiles of 16), a 2,000 x 2,000 scene holds no more open
    tiles than a 400 x 400 one, and neither does a 400 x 2,000 or 2,000 x 400 one: about one band of a strip;
    the strip borders' partial sums wait in the temporary file (unnamed: nothing appears in the folder)."""
    peaks = {}
    for height, width in ((400, 400), (2000, 400), (400, 2000), (2000, 2000)):
        layout = WindowLayout(height, width, 32, 8, strip=160)
        with BlendAccumulator(layout, {"x": 1}, tile=16, spill_dir=tmp_path) as acc:
            for w in layout:
                acc.add(w, {"x": np.ones((1, 32, 32), np.float32)}, np.ones((32, 32), bool))
                assert list(tmp_path.iterdir()) == []
            assert acc.finished and acc.spilled_peak > 0
            peaks[height, width] = acc.peak_open
        assert acc.spill_closed
    # a strip spans at most 160 px + one stride + one window: 3 bands of that many tiles (+ the border's)
    assert max(peaks.values()) <= 3 * (-(-(160 + 24 + 32) // 16) + 2)
    whole = BlendAccumulator(WindowLayout(2000, 2000, 32, 8, strip=None), {"x": 1}, tile=16)
    for w in whole.layout:
        whole.add(w, {"x": np.ones((1, 32, 32), np.float32)}, np.ones((32, 32), bool))
    assert whole.peak_open > 120 > 5 * peaks[2000, 2000]  # whole bands: a tile row across 2,000 px and more


def test_temporary_file_is_closed_after_a_failure(tmp_path) -> None:
    layout = WindowLayout(200, 200, 32, 8, strip=64)
    with pytest.raises(RuntimeError, match="model failed"), BlendAccumulator(layout, {"x": 1}, tile=16,
                                                                            spill_dir=tmp_path) as acc:
        for k, w in enumerate(layout):
            acc.add(w, {"x": np.ones((1, 32, 32), np.float32)}, np.ones((32, 32), bool))
            if k == 40:
                assert not acc.spill_closed and acc._spill.held > 0
                raise RuntimeError("model failed")
    assert acc.spill_closed and list(tmp_path.iterdir()) == []
