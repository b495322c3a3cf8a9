"""Window layout and blending: every pixel covered, weights positive, an identity model reproduced exactly."""

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
    overlap = draw(st.integers(0, size - 1))
    return WindowLayout(draw(st.integers(1, 260)), draw(st.integers(1, 260)), size, overlap)


def blend_through(layout: WindowLayout, scene: np.ndarray, valid: np.ndarray, kind: str = "hann"):
    """Cut ``scene`` into the layout's windows (padded), blend them back, and return the result."""
    acc = BlendAccumulator(layout, {"x": scene.shape[0]}, kind)
    pad = layout.size
    padded = np.pad(scene, ((0, 0), (0, pad), (0, pad)))
    padded_valid = np.pad(valid, ((0, pad), (0, pad)))
    out = np.full(scene.shape, -1.0, dtype=np.float32)
    out_valid = np.zeros(valid.shape, dtype=bool)
    rows_written = []
    for w in layout:
        sl = (slice(w.row_off, w.row_off + w.size), slice(w.col_off, w.col_off + w.size))
        band = acc.add(w, {"x": padded[(slice(None), *sl)]}, padded_valid[sl])
        if band is not None:
            assert band.row_off == (rows_written[-1][1] if rows_written else 0)
            rows_written.append((band.row_off, band.row_off + band.height))
            out[:, band.row_off : band.row_off + band.height] = band.values["x"]
            out_valid[band.row_off : band.row_off + band.height] = band.valid
    assert rows_written[-1][1] == layout.height  # every row flushed exactly once, in order
    return out, out_valid, acc


@settings(max_examples=60, deadline=None)
@given(layouts(), st.sampled_from(["hann", "cosine", "triangular", "uniform"]), st.integers(0, 2**31))
def test_blend_covers_every_pixel_and_reproduces_identity(layout: WindowLayout, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scene = rng.random((2, layout.height, layout.width), dtype=np.float32)
    valid = np.ones((layout.height, layout.width), dtype=bool)
    out, out_valid, acc = blend_through(layout, scene, valid, kind)
    assert out_valid.all()  # sum of weights > 0 on every pixel, borders and last row/column included
    np.testing.assert_array_equal(out, scene)  # exactly, not approximately
    assert acc.sums["x"].shape[1] <= layout.size  # memory: one window of rows, whatever the height


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
    np.testing.assert_array_equal(out[:, valid], scene[:, valid])


def test_window_starts_by_hand() -> None:
    assert window_starts(1000, 512, 384) == [0, 384, 488]  # last window moved back to end at 1000
    assert window_starts(896, 512, 384) == [0, 384]
    assert window_starts(100, 512, 384) == [0]  # smaller than a window: one padded window
    layout = WindowLayout(1000, 100, 512, 128)
    assert [layout.band_end(b) for b in range(3)] == [384, 488, 1000]
    assert len(layout) == 3 and layout.buffer_rows == 512


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
