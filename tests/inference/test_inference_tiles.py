"""Tiled blending through the whole predict path: a narrow-tall and a wide-short scene (row bands and column
bands) match an in-memory tiling of the same model (whole scene as one array, float64 sums) within 1e-6,
nodata included."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import CRS_UTM, TRANSFORM, make_bundle
from torch import nn

from eoseg.config.schema import HeadSpec, PostSpec, PredictSpec
from eoseg.inference.blend import weight_window
from eoseg.inference.predictor import predict_scene, walk_order
from eoseg.inference.reader import check_scene
from eoseg.inference.windows import WindowLayout

WINDOW, OVERLAP, MEAN, STD = 64, 16, 100.0, 50.0


class Conv(nn.Module):
    """A seeded 3x3 convolution: its output depends on the neighbours, so window borders matter."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"value": self.conv(x)}


def tiled_scene(path, height: int, width: int) -> np.ndarray:
    """A tiled uint8 GeoTIFF with nodata 0 in a box and along one edge; returns its array."""
    array = np.random.default_rng(height).integers(1, 256, (1, height, width)).astype(np.uint8)
    array[0, 5:25, 7:30] = 0
    array[0, -3:, :] = 0
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8", "nodata": 0,
               "crs": CRS_UTM, "transform": TRANSFORM, "tiled": True, "blockxsize": 16, "blockysize": 16}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
    return array


def in_memory_tiling(model: nn.Module, array: np.ndarray) -> np.ndarray:
    """Reference: normalise the whole scene, cut padded windows, run them one by one, blend in float64."""
    _, height, width = array.shape
    valid = array[0] != 0
    x = (array.astype(np.float64) - MEAN) / STD
    x[:, ~valid] = 0.0
    x = np.pad(x, ((0, 0), (0, WINDOW), (0, WINDOW)))
    valid_pad = np.pad(valid, ((0, WINDOW), (0, WINDOW)))
    weight = weight_window(WINDOW).astype(np.float64)
    sums = np.zeros((height + WINDOW, width + WINDOW))
    total = np.zeros_like(sums)
    with torch.inference_mode():
        for w in WindowLayout(height, width, WINDOW, OVERLAP, order="rows"):
            region = (slice(w.row_off, w.row_off + WINDOW), slice(w.col_off, w.col_off + WINDOW))
            window = torch.from_numpy(x[(slice(None), *region)][None].astype(np.float32))
            y = model(window)["value"][0, 0].double().numpy()
            w_valid = weight * valid_pad[region]
            sums[region] += y * w_valid
            total[region] += w_valid
    sums, total = sums[:height, :width], total[:height, :width]
    return np.where(total > 0, sums / np.where(total > 0, total, 1), np.nan)


@pytest.mark.parametrize(("height", "width"), [(700, 40), (40, 700)])
def test_narrow_tall_and_wide_short_scenes_match_in_memory_tiling(tmp_path, height, width) -> None:
    array = tiled_scene(tmp_path / "scene.tif", height, width)
    model = Conv().eval()
    bundle = make_bundle(model, heads={"value": HeadSpec()}, task="regression", mean=MEAN, std=STD, chip=WINDOW)
    scene = check_scene({"image": tmp_path / "scene.tif"}, bundle)
    layout = WindowLayout(height, width, WINDOW, OVERLAP, walk_order(scene))
    assert layout.by_columns == (width > height)  # column bands for the wide scene: tiles open across 40 px
    spec = PredictSpec(device="cpu", window=WINDOW, overlap=OVERLAP, batch_size=3, workers=2)
    out = predict_scene([bundle], {"image": tmp_path / "scene.tif"}, tmp_path / "o", spec, PostSpec(),
                        progress=False)
    with rasterio.open(out.values["value"]) as src:
        got = src.read(1)
    expected = in_memory_tiling(model, array)
    assert np.array_equal(np.isnan(got), array[0] == 0)  # nodata exactly where the input has none
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, equal_nan=True)
    assert np.abs(expected[array[0] != 0]).max() > 0.1  # a real signal, not zeros


def test_striped_wide_scene_is_walked_in_row_bands(tmp_path) -> None:
    """A striped (untiled) wide input: column bands would decode every strip once per band; rows instead."""
    array = np.ones((1, 20, 300), np.uint8)
    profile = {"driver": "GTiff", "width": 300, "height": 20, "count": 1, "dtype": "uint8", "nodata": 0,
               "crs": CRS_UTM, "transform": TRANSFORM}
    with rasterio.open(tmp_path / "striped.tif", "w", **profile) as dst:
        dst.write(array)
    bundle = make_bundle(Conv(), heads={"value": HeadSpec()}, task="regression", chip=WINDOW)
    assert walk_order(check_scene({"image": tmp_path / "striped.tif"}, bundle)) == "rows"


@pytest.mark.parametrize("reuse", [False, True])
def test_reader_batches_hold_every_window_in_order_as_the_model_sees_it(tmp_path, reuse) -> None:
    """WindowReader.batches: windows in layout order in batches of 3 (the last one smaller), each slot holding
    the normalised window (invalid and beyond-the-scene pixels 0) and its valid pixels, as read directly;
    with ``reuse`` the same values while the tensors of finished batches are filled again."""
    from eoseg.inference.reader import InputRecipe, WindowReader

    array = tiled_scene(tmp_path / "scene.tif", 600, 40)  # narrower than a window: padded beyond the scene
    bundle = make_bundle(Conv(), chip=WINDOW, mean=MEAN, std=STD)
    scene = check_scene({"image": tmp_path / "scene.tif"}, bundle)
    layout = WindowLayout(600, 40, WINDOW, OVERLAP)  # 13 windows: 4 full batches, 2 read ahead
    padded = np.pad(array[0], ((0, WINDOW), (0, WINDOW)))
    seen, buffers = [], []
    with WindowReader(scene, [InputRecipe(bundle)], workers=2, prefetch=4) as reader:
        for batch in reader.batches(layout, 3, reuse=reuse):  # checked as it comes: reused tensors change later
            seen.append(list(batch.windows))
            buffers.append(batch.inputs[0].data_ptr())
            assert batch.inputs[0].shape == (len(batch.windows), 1, WINDOW, WINDOW)
            for j, w in enumerate(batch.windows):
                raw = padded[w.row_off : w.row_off + WINDOW, w.col_off : w.col_off + WINDOW]
                valid = raw != 0
                expected = np.where(valid, (raw.astype(np.float32) - np.float32(MEAN)) / np.float32(STD), 0)
                np.testing.assert_array_equal(batch.valid[j].numpy(), valid)
                np.testing.assert_array_equal(batch.inputs[0][j, 0].numpy(), expected)
    windows = list(layout)
    assert [w for b in seen for w in b] == windows
    assert [len(b) for b in seen] == [3] * (len(windows) // 3) + [len(windows) % 3] * bool(len(windows) % 3)
    full = [p for p, b in zip(buffers, seen, strict=True) if len(b) == 3]
    assert (len(set(full)) < len(full)) == reuse  # reuse: later batches fill the tensors of earlier ones


def test_reader_threads_each_read_their_run_of_every_band(tmp_path, monkeypatch) -> None:
    """With 2 workers each thread reads one contiguous run of every band (WindowLayout.part), not windows in
    turn: a file block under neighbouring windows is decoded by one thread's dataset, not by both."""
    import threading

    from eoseg.inference.reader import InputRecipe, WindowReader

    tiled_scene(tmp_path / "scene.tif", 150, 300)
    bundle = make_bundle(Conv(), chip=WINDOW, mean=MEAN, std=STD)
    scene = check_scene({"image": tmp_path / "scene.tif"}, bundle)
    layout = WindowLayout(150, 300, WINDOW, OVERLAP, order="rows", strip=None)  # 3 bands of 6 windows
    thread_of: dict[int, str] = {}
    read_into = WindowReader.read_into

    def recording(self, batch, j):
        thread_of[batch.windows[j].index] = threading.current_thread().name
        return read_into(self, batch, j)

    monkeypatch.setattr(WindowReader, "read_into", recording)
    with WindowReader(scene, [InputRecipe(bundle)], workers=2, prefetch=4) as reader:
        assert sum(len(b.windows) for b in reader.batches(layout, 4)) == len(layout) == 18
    names = [thread_of[w.index] for w in layout]
    assert len(set(names)) == 2
    assert all(names[b * 6 : b * 6 + 3] == [names[0]] * 3 and names[b * 6 + 3 : b * 6 + 6] == [names[3]] * 3
               for b in range(3))
    assert names[0] != names[3]


class Heads(nn.Module):
    """Seeded 3x3 convolutions: a binary mask head, a 2-channel value head and an image-level class head.
    ``fail_after``: raise on that call (a model failing mid-scene)."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.calls, self.fail_after = 0, fail_after

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.calls == self.fail_after:
            raise RuntimeError("model failed mid-scene")
        y = self.conv(x)
        return {"mask": y[:, :1], "edge": y[:, 1:], "image_class": y[:, 1:].mean((2, 3))}


HEADS = {"mask": HeadSpec(), "edge": HeadSpec(channels=2, activation="identity"),
         "image_class": HeadSpec(kind="image_class", channels=2)}


def test_strip_walk_writes_the_band_walk_outputs(tmp_path) -> None:
    """predict.strip cuts the 150 px bands of a 230 x 150 scene into 3 strips: probabilities, mask, value
    head and image-level means are the same bits as walking whole bands (nodata included)."""
    tiled_scene(tmp_path / "scene.tif", 230, 150)
    bundle = make_bundle(Heads(), heads=HEADS, mean=MEAN, std=STD, chip=WINDOW)
    outputs = {}
    for strip in (None, 60):
        spec = PredictSpec(device="cpu", window=WINDOW, overlap=OVERLAP, batch_size=1, strip=strip,
                           prob_dtype="float16")
        out = predict_scene([bundle], {"image": tmp_path / "scene.tif"}, tmp_path / f"s{strip}", spec, PostSpec(),
                            progress=False)
        arrays = {}
        for path in (out.prob, out.mask, out.values["edge"]):
            with rasterio.open(path) as src:
                arrays[path.name] = src.read()
        outputs[strip] = arrays, out.heads.read_text()
        assert sorted(p.name for p in (tmp_path / f"s{strip}").iterdir()) == sorted(p.name for p in out.paths)
    assert len(WindowLayout(230, 150, WINDOW, OVERLAP, strip=60).strips) == 3
    (whole, heads_whole), (strips, heads_strips) = outputs[None], outputs[60]
    assert heads_strips == heads_whole
    for name, array in whole.items():
        assert array.tobytes() == strips[name].tobytes(), name
    assert np.isnan(whole["scene.edge.tif"]).any() and np.nanstd(whole["scene.edge.tif"]) > 0.05


def test_strip_walk_failure_leaves_nothing_in_the_folder(tmp_path) -> None:
    """A model failing mid-scene in a strip walk (contributions waiting in the temporary file): no file
    is left in --out and none of its files stays open."""
    import os

    tiled_scene(tmp_path / "scene.tif", 230, 150)
    bundle = make_bundle(Heads(fail_after=12), heads=HEADS, mean=MEAN, std=STD, chip=WINDOW)
    spec = PredictSpec(device="cpu", window=WINDOW, overlap=OVERLAP, batch_size=1, strip=60)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="model failed mid-scene"):
        predict_scene([bundle], {"image": tmp_path / "scene.tif"}, out, spec, PostSpec(), progress=False)
    assert list(out.iterdir()) == []
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if fd.isdigit()
           and os.path.exists(f"/proc/self/fd/{fd}")] if os.path.isdir("/proc/self/fd") else []
    assert not [f for f in fds if f.startswith(str(out))]
