"""``prepare`` on small synthetic scenes: layout, chip geometry, padding, scales, targets, resume."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from fixtures.synthetic_scenes import buildings_scene, gradient_image, grid, square_buildings, write_raster
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from eoseg.config.loader import validate_config
from eoseg.data import prepare as prepare_module
from eoseg.data.prepare import chip_windows, prepare
from eoseg.errors import ConfigError, InputError

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul")  # inside rasterio.windows.bounds


def make_config(root, scenes, **data):
    chips = {"size": 32, "overlap": 8, "scales": [1.0], **data.pop("chips", {})}
    raw = {
        "data": {
            "root": str(root),
            "scenes": scenes,
            "targets": {"mask": {"kind": "vector"}},
            "folds": 2,
            "chips": chips,
            **data,
        }
    }
    return validate_config(raw)


@pytest.fixture
def scene(tmp_path):
    image, labels = buildings_scene(tmp_path / "in")
    return {"id": "town", "images": {"image": str(image)}, "targets": {"mask": str(labels)}}


def read(path):
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.crs, src.nodata


def test_layout_manifest_and_chip_geometry(tmp_path, scene):
    result = prepare(make_config(tmp_path / "out", [scene]), progress=False)
    root = tmp_path / "out"
    assert {p.name for p in root.iterdir()} == {"manifest.parquet", "stats.json", "config.yaml", "chips", ".parts"}
    m = pd.read_parquet(result.manifest)
    # 100 px scene, 32 px chips stepping by 24: offsets 0, 24, 48, 72 in each direction
    assert result.chips == len(m) == 16 and result.scenes == 1
    assert sorted(set(m.row_off)) == [0, 24, 48, 72]
    assert list(m.columns) == [
        "chip_id",
        "scene",
        "region",
        "scale",
        "res_x",
        "res_y",
        "row_off",
        "col_off",
        "height",
        "width",
        "size",
        "crs",
        "valid_fraction",
        "image:image",
        "target:mask",
        "frac:mask:0",
        "frac:mask:1",
        "fold",
    ]
    scene_transform = grid()
    covered = np.zeros((100, 100), dtype=bool)
    for row in m.to_dict("records"):
        image, transform, crs, nodata = read(root / row["image:image"])
        r, c = row["row_off"], row["col_off"]
        window = Window(c, r, row["width"], row["height"])
        assert crs.to_string() == row["crs"] == "EPSG:32630" and nodata == 0
        assert rasterio.transform.array_bounds(32, 32, transform) == pytest.approx(
            window_bounds(window, scene_transform)
        )
        covered[r : r + 32, c : c + 32] = True
        expected = gradient_image(100, 100)[:, r : r + 32, c : c + 32]
        np.testing.assert_array_equal(image[:, : 100 - r, : 100 - c], expected)
        assert (image[:, 100 - r :] == 0).all() and (image[:, :, 100 - c :] == 0).all()  # padded with nodata
        mask, *_ = read(root / row["target:mask"])
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 255}
        assert (mask[0, 100 - r :] == 255).all() and (mask[0, :, 100 - c :] == 255).all()  # padding is ignore
        assert row["valid_fraction"] == min(32, 100 - r) * min(32, 100 - c) / 32**2
    assert covered.all()  # every scene pixel lies in some chip
    # the chip at (0, 0) holds the building at rows/cols 10..19 fully: 100 of 1024 valid pixels
    first = m.set_index("chip_id").loc["town-s1-r0-c0"]
    assert first["frac:mask:1"] == pytest.approx(100 / 1024)
    stats = json.loads((root / "stats.json").read_text())
    assert stats["inputs"] == ["image_1", "image_2", "image_3"] and stats["dtypes"] == {"image": "uint8"}
    assert stats["channels"][0]["count"] == 100 * 100  # every valid pixel once, despite the overlap
    assert stats["channels"][0]["mean"] == pytest.approx(gradient_image(100, 100)[0].mean())


def test_scales_resample_and_record_the_ground_resolution(tmp_path, scene):
    config = make_config(tmp_path / "out", [scene], chips={"scales": [0.5, 2.0]})
    m = pd.read_parquet(prepare(config, progress=False).manifest)
    half, double = m[m.scale == 0.5], m[m.scale == 2.0]
    assert set(half.height) == {16} and set(double.height) == {64}
    assert set(half.res_x) == {0.5} and set(double.res_x) == {2.0}
    assert len(double) == 2 * 2 and len(half) == 8 * 8  # steps of 48 and 12 native pixels
    image, transform, *_ = read(tmp_path / "out" / double.iloc[0]["image:image"])
    assert transform.a == 2.0 and image.shape == (3, 32, 32)
    mask, *_ = read(tmp_path / "out" / double.iloc[0]["target:mask"])
    assert mask[0, 5:10, 5:10].all()  # the 10 m building at (10, 10) on 2 m pixels
    assert (mask[0] == 1).sum() == 25 + 25 + 5 * 2  # two whole buildings and the top of a third
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["channels"][0]["count"] == 100 * 100  # statistics at scale 1 even without scale-1 chips
    assert stats["channels"][0]["mean"] == pytest.approx(gradient_image(100, 100)[0].mean())


def test_chips_without_valid_pixels_are_skipped(tmp_path):
    array = gradient_image(64, 64)
    array[:, :, :40] = 0  # left part is nodata
    image = write_raster(tmp_path / "half.tif", array)
    config = make_config(tmp_path / "out", [{"id": "half", "images": {"image": str(image)}}], targets={})
    m = pd.read_parquet(prepare(config, progress=False).manifest)
    assert sorted(set(m.col_off)) == [24, 48]  # the chips at column 0 (pixels 0..31) are all nodata
    assert list(m.columns)[-1] == "fold" and "target:mask" not in m.columns


def test_empty_share_keeps_labelled_chips_plus_a_deterministic_share(tmp_path, scene):
    none = pd.read_parquet(
        prepare(make_config(tmp_path / "a", [scene], chips={"empty_share": 0.0}), progress=False).manifest
    )
    assert len(none) > 0 and (none["frac:mask:1"] > 0).all()
    runs = [
        pd.read_parquet(
            prepare(make_config(tmp_path / d, [scene], chips={"empty_share": 0.5}), progress=False).manifest
        )
        for d in ("b", "c")
    ]
    assert runs[0].chip_id.tolist() == runs[1].chip_id.tolist()
    empties = (runs[0]["frac:mask:1"] == 0).sum()
    assert 0 < empties < 16 - len(none)


def test_named_images_on_different_grids_are_aligned_onto_the_first(tmp_path):
    pre = write_raster(tmp_path / "pre.tif", gradient_image(64, 64, 1))
    coarse = np.arange(1, 33 * 33 + 1, dtype="uint16").reshape(1, 33, 33)  # 2 m pixels, starts 2 m further north
    post = write_raster(tmp_path / "post.tif", coarse, transform=grid(2.0, (500_000.0, 4_000_002.0)))
    config = make_config(
        tmp_path / "out",
        [{"id": "pair", "images": {"pre": str(pre), "post": str(post)}}],
        targets={},
        inputs=["post - pre"],
    )
    m = pd.read_parquet(prepare(config, progress=False).manifest)
    row = m.set_index("chip_id").loc["pair-s1-r24-c24"]
    post_chip, transform, *_ = read(tmp_path / "out" / row["image:post"])
    pre_chip, pre_transform, *_ = read(tmp_path / "out" / row["image:pre"])
    assert transform == pre_transform and post_chip.dtype == np.uint16
    # bilinear alignment of a linear ramp: the ramp's value at each native pixel centre
    rows, cols = np.mgrid[24:40, 24:40] + 0.5
    ramp = 1 + 33 * ((rows + 2) / 2 - 0.5) + (cols / 2 - 0.5)
    np.testing.assert_allclose(post_chip[0, :16, :16], ramp, atol=0.51)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["inputs"] == ["post - pre"] and stats["bands"] == {"pre": ["pre"], "post": ["post"]}


def test_raster_targets_keep_their_dtype_and_ignore_value(tmp_path):
    image = write_raster(tmp_path / "img.tif", gradient_image(40, 40, 1).astype("float32"), nodata=None)
    height = np.full((1, 40, 40), 300, dtype="uint16")
    height[0, :10] = 65535  # missing height
    target = write_raster(tmp_path / "agl.tif", height, nodata=None)
    config = make_config(
        tmp_path / "out",
        [{"id": "h", "images": {"image": str(image)}, "targets": {"agl": str(target)}}],
        targets={"agl": {"kind": "raster", "ignore_value": 65535}},
        chips={"size": 32, "overlap": 0},
    )
    m = pd.read_parquet(prepare(config, progress=False).manifest).set_index("chip_id")
    assert list(m.filter(like="frac:").columns) == ["frac:agl"]
    chip, _, _, nodata = read(tmp_path / "out" / m.loc["h-s1-r0-c0", "target:agl"])
    assert chip.dtype == np.uint16 and nodata == 65535
    assert (chip[0, :10] == 65535).all() and (chip[0, 10:] == 300).all()
    assert m.loc["h-s1-r0-c0", "frac:agl"] == 22 * 32 / 1024
    edge, *_ = read(tmp_path / "out" / m.loc["h-s1-r32-c32", "target:agl"])
    assert (edge[0, :8, :8] == 300).all() and (edge[0, 8:] == 65535).all()  # padding is ignore
    image_chip, _, _, image_nodata = read(tmp_path / "out" / m.loc["h-s1-r32-c32", "image:image"])
    assert np.isnan(image_nodata) and np.isnan(image_chip[0, 8:]).all()  # float image without nodata: NaN


def test_rerun_skips_finished_scenes_and_overwrite_redoes(tmp_path, scene):
    config = make_config(tmp_path / "out", [scene])
    first = prepare(config, progress=False)
    chip = tmp_path / "out" / pd.read_parquet(first.manifest)["image:image"].iloc[0]
    stamp = chip.stat().st_mtime_ns
    again = prepare(config, progress=False)
    assert again.resumed == ["town"] and again.chips == first.chips and chip.stat().st_mtime_ns == stamp
    redone = prepare(config, overwrite=True, progress=False)
    assert redone.resumed == [] and redone.chips == first.chips and chip.stat().st_mtime_ns != stamp
    changed = make_config(tmp_path / "out", [scene], chips={"size": 48})
    with pytest.raises(ConfigError, match=r"scene town was prepared with other data settings; use --overwrite"):
        prepare(changed, progress=False)


def test_interrupted_run_lists_no_half_written_chip_and_resumes(tmp_path, scene, monkeypatch):
    second = dict(scene, id="town2")
    config = make_config(tmp_path / "out", [scene, second])
    real_write = prepare_module.write_geotiff
    calls = {"n": 0}

    def failing_write(path, *args, **kwargs):
        calls["n"] += 1
        if "town2" in str(path) and calls["n"] > 40:
            raise KeyboardInterrupt
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "write_geotiff", failing_write)
    with pytest.raises(KeyboardInterrupt):
        prepare(config, progress=False)
    parts = tmp_path / "out" / ".parts"
    assert [p.name for p in parts.iterdir()] == ["town.json"]  # the interrupted scene has no part
    assert not (tmp_path / "out" / "manifest.parquet").exists()
    assert not list((tmp_path / "out" / "chips").rglob(".*.part.tif"))  # no temporary chip left behind
    monkeypatch.setattr(prepare_module, "write_geotiff", real_write)
    result = prepare(config, progress=False)
    assert result.resumed == ["town"] and result.chips == 32
    m = pd.read_parquet(result.manifest)
    assert all((tmp_path / "out" / p).is_file() for p in m["image:image"])
    assert sorted(m.groupby("scene").fold.first()) == [0, 1]  # one scene per fold


def test_chip_windows_cover_the_scene():
    windows = list(chip_windows(100, 70, 32, 8, 1.0))
    assert len(windows) == 4 * 3
    assert max(w.row_off + w.height for w in windows) >= 100 and max(w.col_off + w.width for w in windows) >= 70
    with pytest.raises(ConfigError, match=r"data\.chips\.scales: scale 0\.3"):
        list(chip_windows(100, 100, 32, 8, 0.3))


def test_vector_target_with_class_map_and_extra_channels(tmp_path, scene):
    target = {"kind": "vector", "burn_attribute": "kind", "class_map": {"house": 1, "shed": 2}}
    config = make_config(
        tmp_path / "out",
        [scene],
        classes=["background", "house", "shed"],
        targets={"mask": {**target, "extra_channels": ["boundary", "contact"], "boundary": {"inner": 1}}},
        chips={"size": 64, "overlap": 0},
    )
    m = pd.read_parquet(prepare(config, progress=False).manifest).set_index("chip_id")
    assert [c for c in m.columns if c.startswith("frac:")] == ["frac:mask:0", "frac:mask:1", "frac:mask:2"]
    chip, *_ = read(tmp_path / "out" / m.loc["town-s1-r0-c0", "target:mask"])
    assert chip.shape == (3, 64, 64)
    assert (chip[0] == 1).sum() == 200 and (chip[0] == 2).sum() == 4 * 10  # shed rows 60..63 of this chip
    assert chip[1].sum() == 2 * 36 + 10 + 2 * 3  # boundary rings: two houses, the cut shed
    assert chip[2].sum() == 0  # no two buildings closer than the default contact spacing (2 px)
    assert m.loc["town-s1-r0-c0", "frac:mask:2"] == pytest.approx(40 / 64**2)


def test_contact_spacing_in_metres_and_boundary_bands(tmp_path, scene):
    # houses at columns 10..19 and 40..49 (rows 10..19), 20 m apart on the 1 m grid; spacing 22 m = both
    # buffered by 11 m: centres x = 29.5 and 30.5 (columns 29, 30) lie within 11 m of both, from row 7 to row 22
    # (at column 29 the far house is 10.5 m away across, so rows up to sqrt(11^2 - 10.5^2) = 3.3 m beyond)
    spec = {"kind": "vector", "extra_channels": ["contact", "boundary"], "contact": {"spacing": 22, "unit": "m"},
            "boundary": {"inner": 0, "outer": 1}}
    config = make_config(tmp_path / "out", [scene], targets={"mask": spec}, chips={"size": 64, "overlap": 0})
    m = pd.read_parquet(prepare(config, progress=False).manifest).set_index("chip_id")
    chip, *_ = read(tmp_path / "out" / m.loc["town-s1-r0-c0", "target:mask"])
    assert chip[1].sum() == 2 * 16 and chip[1, 7:23, 29:31].all()
    # outer 1 px rings of the two houses, and of the shed (rows 60..69) the row above it and 4 rows of its sides
    assert chip[2].sum() == 2 * (144 - 100) + (12 + 4 * 2)


def test_contact_in_metres_on_a_geographic_scene_is_refused(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    degrees = grid(res=1e-5, origin=(10.0, 50.0))
    image = write_raster(folder / "scene.tif", gradient_image(40, 40), transform=degrees, crs="EPSG:4326")
    labels = folder / "b.geojson"
    square_buildings(degrees, [(5, 5), (5, 18)], crs="EPSG:4326").to_file(labels, driver="GeoJSON")
    before = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    spec = {"kind": "vector", "extra_channels": ["contact"], "contact": {"spacing": 2, "unit": "m"}}
    scenes = [{"id": "geo", "images": {"image": str(image)}, "targets": {"mask": str(labels)}}]
    with pytest.raises(InputError, match=r"scene\.tif: data\.targets\.mask\.contact\.unit=m but scene geo has a "
                                         r"geographic CRS \(no metres\); use contact\.unit=px$"):
        prepare(make_config(tmp_path / "out", scenes, targets={"mask": spec}), progress=False)
    assert {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before
    assert not (tmp_path / "out" / "manifest.parquet").exists()


def test_boundary_without_any_width_is_a_config_error(tmp_path, scene):
    spec = {"kind": "vector", "extra_channels": ["boundary"], "boundary": {"inner": 0, "outer": 0}}
    with pytest.raises(ConfigError, match=r"data\.targets\.mask\.boundary.*inner and outer are both 0"):
        make_config(tmp_path / "out", [scene], targets={"mask": spec})
