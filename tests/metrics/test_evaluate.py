"""``evaluate``: predictions against truth rasters, truth polygons in another CRS, SpaceNet CSVs."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from eoseg.errors import InputError
from eoseg.formats.spacenet import write_spacenet_csv
from eoseg.geo.raster import write_geotiff
from eoseg.metrics.evaluate import evaluate
from eoseg.metrics.objects import SpaceNetRules

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)


def raster(path, array, nodata=255, transform=TRANSFORM):
    return write_geotiff(path, np.asarray(array, np.uint8)[None], UTM, transform, nodata)


def two_scenes(tmp_path):
    pred_a = raster(tmp_path / "a.mask.tif", [[1, 1, 0, 0], [1, 255, 0, 1]])
    truth_a = raster(tmp_path / "a.truth.tif", [[1, 0, 0, 255], [1, 1, 0, 1]])
    pred_b = raster(tmp_path / "b.mask.tif", [[0, 0], [1, 1]])
    truth_b = raster(tmp_path / "b.truth.tif", [[0, 1], [1, 0]])
    return [pred_a, pred_b], [truth_a, truth_b]


def test_pixel_metrics_pool_all_scenes_and_skip_ignore_and_nodata(tmp_path):
    preds, truths = two_scenes(tmp_path)
    result = evaluate(preds, truths, out=tmp_path / "metrics.json")
    # scene a: (0,3) ignore, (1,1) pred nodata -> TP 3 [(0,0),(1,0),(1,3)], FP 1 [(0,1)], FN 0
    # scene b: TP 1, FP 1, FN 1
    building = result["pixel"]["per_class"]["foreground"]
    assert (building["tp"], building["fp"], building["fn"]) == (4, 2, 1)
    assert result["pixel"]["micro"]["iou"] == pytest.approx(4 / 7)
    assert result["pixel_scenes"]["a"]["iou"] == pytest.approx(3 / 4)
    assert result["pixel_scenes"]["b"]["iou"] == pytest.approx(1 / 3)
    assert "objects" not in result
    assert json.loads((tmp_path / "metrics.json").read_text())["pixel"]["micro"]["tp"] == 4


def test_truth_polygons_are_reprojected_and_rasterized_on_the_prediction_grid(tmp_path):
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:8] = 1
    mask[10:16, 12:18] = 1
    mask[18:20, 0:2] = 1  # a false positive building
    pred = raster(tmp_path / "scene.mask.tif", mask)
    boxes = [
        shapely.box(*TRANSFORM * (2, 6), *TRANSFORM * (8, 2)),
        shapely.box(*TRANSFORM * (12, 16), *TRANSFORM * (18, 10)),
    ]
    truth = tmp_path / "truth.geojson"
    gpd.GeoDataFrame(geometry=boxes, crs=UTM).to_crs("EPSG:4326").to_file(truth)
    result = evaluate([pred], [truth])
    building = result["pixel"]["per_class"]["foreground"]
    assert (building["tp"], building["fp"], building["fn"]) == (24 + 36, 4, 0)
    overall = result["objects"]["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (2, 0, 0)  # the 4 px false positive is <= 20 px
    overall = evaluate([pred], [truth], rules=SpaceNetRules(min_pred_area=0))["objects"]["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (2, 1, 0)


def test_truth_raster_on_another_grid_is_an_error_unless_resampled(tmp_path):
    pred = raster(tmp_path / "p.tif", np.ones((4, 4)))
    coarse = Affine(1.0, 0, 740000.0, 0, -1.0, 3740000.0)  # 1 m pixels over the same area
    truth = raster(tmp_path / "t.tif", np.ones((2, 2)), transform=coarse)
    with pytest.raises(InputError, match=r"t\.tif: truth raster is not on the grid of p\.tif .*pass --resample"):
        evaluate([pred], [truth])
    result = evaluate([pred], [truth], resample=True)
    assert result["pixel"]["micro"]["iou"] == 1.0 and result["pixel"]["pixels"] == 16


def test_spacenet_csvs_are_compared_image_by_image(tmp_path):
    truth = gpd.GeoDataFrame(
        {"image_id": ["i1", "i1", "i2"]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10), shapely.Polygon()],
    )
    pred = gpd.GeoDataFrame(
        {"image_id": ["i1", "i2"], "confidence": [1.0, 1.0]},
        geometry=[shapely.box(0, 0, 10, 9), shapely.box(0, 0, 5, 5)],
    )
    result = evaluate(
        [write_spacenet_csv(tmp_path / "pred.csv", pred)], [write_spacenet_csv(tmp_path / "truth.csv", truth)]
    )
    assert result["objects"]["per_scene"]["i1"]["tp"] == 1 and result["objects"]["per_scene"]["i1"]["fn"] == 1
    assert result["objects"]["per_scene"]["i2"]["fp"] == 1
    assert "pixel" not in result


def test_spacenet_csvs_in_map_coordinates_measure_areas_in_pixels(tmp_path):
    """--coords geo: matching on PolygonWKT_Geo, the 20 px rule with the pixel size from the truth's Pix/Geo."""
    frame = gpd.GeoDataFrame(
        {"image_id": ["AOI_1_Rio_img1", "AOI_1_Rio_img1"]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 24, 4)],
    )
    truth = write_spacenet_csv(tmp_path / "truth.csv", frame, "pixel", TRANSFORM)
    pred = write_spacenet_csv(tmp_path / "pred.csv", frame.iloc[:1], "pixel", TRANSFORM)
    objects = evaluate([pred], [truth], coords="geo")["objects"]  # the 16 px truth is dropped: not a miss
    assert (objects["overall"]["tp"], objects["overall"]["fn"], objects["area_filter"]) == (1, 0, "on")
    assert list(objects["per_aoi"]) == ["AOI_1_Rio"]


def test_bad_inputs(tmp_path):
    preds, truths = two_scenes(tmp_path)
    with pytest.raises(InputError, match=r"2 prediction\(s\) but 1 truth file\(s\)"):
        evaluate(preds, truths[:1])
    with pytest.raises(InputError, match=r"gone\.tif: file does not exist"):
        evaluate([tmp_path / "gone.tif"], truths[:1])
    (tmp_path / "blocker").write_text("")
    with pytest.raises(InputError, match=r"blocker is a file, not a folder"):
        evaluate(preds, truths, out=tmp_path / "blocker" / "m.json")


def test_real_spacenet_tile_footprints_survive_rasterize_vectorize_evaluate(shared_data, tmp_path):
    """Real SpaceNet footprints burnt on the tile grid, traced back, scored against the originals."""
    from rasterio import features

    from eoseg.geo.raster import raster_info
    from eoseg.post.vectorize import vectorize

    folder = shared_data / "spacenet-atlanta"
    info = raster_info(folder / "atlanta_pan.tif")
    footprints = gpd.read_file(folder / "atlanta_buildings.geojson").to_crs(info.crs)
    mask = features.rasterize(footprints.geometry, out_shape=(info.height, info.width), transform=info.transform)
    mask_path = write_geotiff(tmp_path / "atlanta.mask.tif", mask[None].astype(np.uint8), info.crs, info.transform, 255)
    polygons = vectorize(mask_path, tmp_path / "atlanta.gpkg")
    result = evaluate([mask_path], [folder / "atlanta_buildings.geojson"])
    assert result["pixel"]["micro"]["iou"] == 1.0
    overall = result["objects"]["overall"]
    assert overall["recall"] == 1.0 and overall["tp"] == len(footprints)
    # a thin part of a footprint rasterizes into a separate 4-connected piece of <= 20 px: dropped by the rule
    assert overall["fp"] == 0 and len(polygons) == len(footprints) + 1


def test_vector_truth_is_clipped_to_the_predictions_valid_extent(tmp_path, capsys):
    """Truth outside the prediction (beyond the raster or in its nodata) is left out and counted; a building
    cut by the edge is scored by its part inside, and a tiny remnant falls under the 20 px truth rule."""
    mask = np.zeros((40, 40), np.uint8)
    mask[:, 30:] = 255  # nodata: the valid extent is columns 0..29
    mask[2:10, 2:10] = 1  # building A
    mask[20:30, 24:30] = 1  # the inside part of building D
    pred = raster(tmp_path / "tile.mask.tif", mask)

    def box(c0, r0, c1, r1):  # pixel columns / rows -> map box
        return shapely.box(*TRANSFORM * (c0, r1), *TRANSFORM * (c1, r0))

    truth = tmp_path / "city.gpkg"
    gpd.GeoDataFrame(geometry=[
        box(2, 2, 10, 10),  # A: inside
        box(100, 2, 110, 12),  # B: beyond the raster
        box(32, 2, 38, 10),  # C: in the nodata columns
        box(24, 20, 36, 30),  # D: cut by the edge (half inside: IoU 0.5 unclipped, not a match)
        box(29, 32, 40, 36),  # E: cut, 4 px inside (< 20 px)
    ], crs=UTM).to_file(truth)
    objects = evaluate([pred], [truth])["objects"]
    assert (objects["overall"]["tp"], objects["overall"]["fp"], objects["overall"]["fn"]) == (2, 0, 0)
    assert objects["truth_outside_extent"] == {"left_out": 2, "cut": 2, "images": {"tile": {"left_out": 2, "cut": 2}}}
    from eoseg.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(pred), "--truth", str(truth)])
    assert exit_info.value.code == 0
    assert ("truth clipped to the prediction's valid extent: 2 feature(s) outside it left out, 2 cut at its edge "
            "scored by their part inside") in capsys.readouterr().out


def test_pixel_metrics_read_bands_bounded_by_area_with_the_same_counts(tmp_path, monkeypatch):
    """A wide scene is read in row bands of band_rows_for(width) rows (not 1,024 full-width rows), and the
    scores do not depend on the band height."""
    import eoseg.metrics.evaluate as module

    rng = np.random.default_rng(0)
    pred = raster(tmp_path / "pred.tif", rng.integers(0, 2, (40, 16384)), nodata=None)
    truth = raster(tmp_path / "truth.tif", rng.integers(0, 2, (40, 16384)), nodata=None)
    seen = []
    original = module.row_windows
    monkeypatch.setattr(module, "row_windows", lambda h, w, rows: seen.append(rows) or original(h, w, rows))
    default = evaluate([pred], [truth], objects=False)["pixel"]
    assert seen == [256]  # 4 Mpx bands at 16,384 columns
    assert evaluate([pred], [truth], objects=False, band_rows=7)["pixel"] == default
