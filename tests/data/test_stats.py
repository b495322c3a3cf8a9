"""Streaming band statistics: exact for integer bands, bounded error for floats, mergeable, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eoseg.data.stats import ChannelStats, StatsAccumulator, normalize, read_stats, write_stats


def numpy_summary(values: np.ndarray) -> dict[str, float]:
    v = values.astype(np.float64)
    return {
        "count": v.size,
        "mean": v.mean(),
        "std": v.std(),
        "min": v.min(),
        "max": v.max(),
        "p2": np.percentile(v, 2),
        "p98": np.percentile(v, 98),
    }


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_integer_channels_are_exact_and_merge_in_any_split(dtype):
    info = np.iinfo(dtype)
    values = np.random.default_rng(1).integers(info.min, info.max, 10_001, endpoint=True).astype(dtype)
    whole = ChannelStats(integer=True)
    whole.update(values)
    parts = [ChannelStats(integer=True) for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(values, 3), strict=True):
        part.update(chunk)
    merged = ChannelStats.from_dict(json.loads(json.dumps(parts[0].to_dict())))  # through a part file
    merged.merge(parts[1])
    merged.merge(parts[2])
    expected = numpy_summary(values)
    for stats in (whole, merged):
        summary = stats.summary()
        assert summary["count"] == expected["count"]
        for key in ("min", "max", "p2", "p98"):
            assert summary[key] == expected[key], key
        assert summary["mean"] == pytest.approx(expected["mean"], rel=1e-12)
        assert summary["std"] == pytest.approx(expected["std"], rel=1e-12)


def test_float_channels_mean_std_exact_percentiles_within_bucket_error():
    values = np.random.default_rng(2).normal(-12.0, 5.0, 50_000).astype(np.float32)
    stats = ChannelStats(integer=False)
    for chunk in np.array_split(values, 7):
        stats.update(chunk)
    summary, expected = stats.summary(), numpy_summary(values)
    assert summary["mean"] == pytest.approx(expected["mean"], rel=1e-9)
    assert summary["std"] == pytest.approx(expected["std"], rel=1e-9)
    assert summary["min"] == expected["min"] and summary["max"] == expected["max"]
    for key in ("p2", "p98"):
        assert summary[key] == pytest.approx(expected[key], rel=2**-8), key


def test_memory_is_fixed_per_channel():
    stats = ChannelStats(integer=False)
    before = stats.hist.nbytes
    stats.update(np.random.default_rng(3).random(200_000).astype(np.float32))
    assert stats.hist.nbytes == before == 2**16 * 8


def test_accumulator_write_and_normalize(tmp_path):
    acc = StatsAccumulator(["a", "b"], [True, False])
    acc.update(0, np.array([1, 3], dtype=np.uint8))
    acc.update(1, np.array([10.0, 30.0], dtype=np.float32))
    path = write_stats(tmp_path / "stats.json", {"inputs": ["a", "b"], "channels": acc.summary()})
    stats = read_stats(path)
    assert [c["mean"] for c in stats["channels"]] == [2.0, 20.0]
    assert [c["std"] for c in stats["channels"]] == [1.0, 10.0]
    x = np.array([[[1.0, 3.0]], [[20.0, 40.0]]])
    out = normalize(x, stats)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[-1, 1]], [[0, 2]]])


def test_float_channels_skip_non_finite_values():
    stats = ChannelStats(integer=False)
    stats.update(np.array([1.0, np.inf, np.nan, 3.0], dtype=np.float32))  # e.g. a ratio divided by zero
    summary = stats.summary()
    assert summary["count"] == 2 and summary["mean"] == 2.0 and summary["max"] == 3.0


def reference_inputs(bandmath, images, valid, stats):
    """model_inputs as first written: band math, then normalize, then invalid pixels 0."""
    out = normalize(bandmath.apply(images), stats)
    out[:, ~valid] = 0.0
    return out


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_model_inputs_equal_band_math_then_normalize_bit_for_bit(dtype):
    """The fused pass (cast and shift in one call) gives exactly the values of band math followed by
    normalisation, for plain bands, an expression, a zero std and invalid pixels; training and prediction
    both see these values, so a 1-ulp difference would change predictions."""
    from eoseg.data.bandmath import BandMath
    from eoseg.data.stats import model_inputs

    rng = np.random.default_rng(5)
    high = 255 if dtype == "uint8" else 4000
    image = rng.integers(0, high, (3, 37, 41)).astype(dtype)
    if dtype == "float32":
        image += rng.random(image.shape, dtype=np.float32)
    bandmath = BandMath(["r", "g", "(r - b) / (r + b + 1)", "b"], {"image": ["r", "g", "b"]})
    stats = {"channels": [{"mean": 117.3, "std": 61.7}, {"mean": 3.1, "std": 0.0},
                          {"mean": 0.02, "std": 0.31}, {"mean": -4.5, "std": 1e-3}]}
    valid = rng.random((37, 41)) > 0.1
    out = model_inputs(bandmath, {"image": image}, valid, stats)
    expected = reference_inputs(bandmath, {"image": image}, valid, stats)
    assert out.dtype == np.float32 and out.shape == (4, 37, 41)
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))  # bit for bit, signs of zero too
    assert (out[:, ~valid] == 0).all() and out[0, valid].std() > 0.1
    everywhere = model_inputs(bandmath, {"image": image}, np.ones((37, 41), bool), stats)
    assert np.array_equal(everywhere, reference_inputs(bandmath, {"image": image}, np.ones((37, 41), bool), stats))
