"""Quicklook and error-map PNGs: size, stretch, mask tint, polygon outlines, outcome colours, bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from eoseg.errors import InputError
from eoseg.report.quicklook import (
    ERROR_CLASSES,
    LEGEND_HEIGHT,
    LEGEND_MIN_WIDTH,
    POLYGON_RGB,
    error_classes,
    error_map_png,
    quicklook_png,
)

CRS = "EPSG:32633"
TRANSFORM = Affine(0.5, 0, 400_000, 0, -0.5, 5_000_000)  # 0.5 m pixels


def _write(path: Path, array: np.ndarray, nodata: float | None = None) -> Path:
    array = array if array.ndim == 3 else array[None]
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
                       dtype=array.dtype, crs=CRS, transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(array)
    return path


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


@pytest.fixture
def scene(tmp_path):
    """A 200 x 300 grey RGB scene with one 'building' (rows 40-79, cols 60-139) in its mask."""
    image = np.full((3, 200, 300), 100, np.uint8)
    mask = np.zeros((200, 300), np.uint8)
    mask[40:80, 60:140] = 1
    return _write(tmp_path / "scene.tif", image), _write(tmp_path / "mask.tif", mask, nodata=255)


def test_quicklook_is_downsampled_to_max_size_with_mask_tint(scene, tmp_path):
    image, mask = scene
    out = quicklook_png(image, mask, tmp_path / "q.png", max_size=150)
    picture = _rgb(out)
    assert picture.shape == (100, 150, 3)  # 200 x 300 halved
    assert tuple(picture[5, 5]) == (100, 100, 100)  # background untouched
    building = picture[30, 50]  # centre of the building at half size
    assert building[0] > building[2] + 40  # tinted orange


def test_quicklook_outlines_polygons_from_a_file_in_another_crs(scene, tmp_path):
    image, _ = scene
    # rows 100-149, cols 200-249 of the full scene, written in WGS 84
    x0, y0 = TRANSFORM @ (200, 150)
    x1, y1 = TRANSFORM @ (250, 100)
    frame = gpd.GeoDataFrame(geometry=[box(x0, y0, x1, y1)], crs=CRS).to_crs("EPSG:4326")
    frame.to_file(tmp_path / "polys.geojson")
    picture = _rgb(quicklook_png(image, None, tmp_path / "q.png", polygons=tmp_path / "polys.geojson"))
    assert picture.shape == (200, 300, 3)
    yellow = np.all(np.abs(picture.astype(int) - POLYGON_RGB) < 60, axis=-1)
    rows, cols = np.nonzero(yellow)
    assert abs(rows.min() - 100) <= 1 and abs(rows.max() - 149) <= 1
    assert abs(cols.min() - 200) <= 1 and abs(cols.max() - 249) <= 1
    assert not yellow[110:140, 210:240].any()  # an outline, not a fill


def test_quicklook_stretches_float_single_band(tmp_path):
    values = np.linspace(-30, 5, 64 * 64, dtype=np.float32).reshape(64, 64)  # e.g. SAR backscatter in dB
    values[:8] = -9999
    path = _write(tmp_path / "sar.tif", values, nodata=-9999)
    picture = _rgb(quicklook_png(path, None, tmp_path / "q.png"))
    assert picture.shape == (64, 64, 3)
    assert (picture[:8] == 0).all()  # nodata stays black
    assert (picture[..., 0] == picture[..., 1]).all()  # grey
    assert picture[10, 0, 0] < 15 and picture[63, 63, 0] > 240  # 2-98 % stretch uses the full range


def test_quicklook_refuses_a_mask_of_another_size(scene, tmp_path):
    image, _ = scene
    small = _write(tmp_path / "small.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match=r"small\.tif is 10x10 pixels but .*scene\.tif is 200x300"):
        quicklook_png(image, small, tmp_path / "q.png")
    assert not (tmp_path / "q.png").exists()
    with pytest.raises(InputError, match=r"missing\.tif: raster not found"):
        quicklook_png(tmp_path / "missing.tif", None, tmp_path / "q.png")


def test_error_classes_by_hand():
    pred = np.array([[0, 1, 1, 2, 255, 0]])
    truth = np.array([[0, 1, 0, 1, 1, 2]])
    #                 TN  TP  FP  wrong ignored FN
    assert error_classes(pred, truth).tolist() == [[4, 0, 1, 3, 5, 2]]
    assert error_classes(np.array([[1]]), np.array([[255]])).tolist() == [[5]]


def test_error_map_colours_and_legend(tmp_path):
    pred = np.zeros((60, 80), np.uint8)
    truth = np.zeros((60, 80), np.uint8)
    pred[10:30, 10:30] = 1
    truth[10:30, 20:40] = 1  # overlap cols 20-29: TP; cols 10-19: FP; cols 30-39: FN
    pred_path = _write(tmp_path / "pred.tif", pred, nodata=255)
    out = error_map_png(pred_path, truth, tmp_path / "errors.png")
    picture = _rgb(out)
    assert picture.shape == (60 + LEGEND_HEIGHT, LEGEND_MIN_WIDTH, 3)
    colours = {name: np.array(rgb) for name, rgb in ERROR_CLASSES.items()}
    assert np.abs(picture[20, 25].astype(int) - colours["true positive"]).max() <= 2
    assert np.abs(picture[20, 15].astype(int) - colours["false positive"]).max() <= 2
    assert np.abs(picture[20, 35].astype(int) - colours["false negative"]).max() <= 2
    assert np.abs(picture[50, 70].astype(int) - colours["true negative"]).max() <= 2
    # the same truth as a raster gives the same picture
    truth_path = _write(tmp_path / "truth.tif", truth)
    assert (_rgb(error_map_png(pred_path, truth_path, tmp_path / "errors2.png")) == picture).all()


def test_error_map_refuses_a_truth_of_another_shape(tmp_path):
    pred_path = _write(tmp_path / "pred.tif", np.zeros((20, 20), np.uint8))
    with pytest.raises(InputError, match=r"truth array is 10x20 pixels but .*pred\.tif is 20x20"):
        error_map_png(pred_path, np.zeros((10, 20), np.uint8), tmp_path / "e.png")
