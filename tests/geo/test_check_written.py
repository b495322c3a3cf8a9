"""check_written: an output whose write failed unnoticed (GDAL only logs it) is refused before it replaces
the target. A COG is checked tile by tile by GDAL's block leaders and trailers (cheap: no decoding but the
last tile); other rasters are decoded block by block."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eoseg.errors import InputError
from eoseg.geo.cog import RasterSpec, TiledRasterWriter
from eoseg.geo.raster import _declares_tile_checks, check_written

GRID = {"crs": CRS.from_epsg(32616), "transform": Affine(0.5, 0, 500000, 0, -0.5, 3700000)}


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    """A 1,536 x 1,024 uint8 COG with an internal mask and two overview levels (18 tiles in 6 directories)."""
    path = tmp_path_factory.mktemp("cog") / "prob.tif"
    spec = RasterSpec(1536, 1024, 1, "uint8", use_mask=True, **GRID)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (1, 1024, 1536), dtype=np.uint8)
    valid = rng.random((1024, 1536)) > 0.05
    with TiledRasterWriter(path, spec) as writer:
        writer.write_rows(0, data, valid)
        writer.finish()
    return path


def tile(path, directory: int = 1, i: int = 0, j: int = 0) -> tuple[int, int]:
    with rasterio.open(f"GTIFF_DIR:{directory}:{path}") as ifd:
        offset = int(ifd.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=1))
        return offset, int(ifd.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=1))


def damaged(cog, tmp_path, how) -> str:
    copy = tmp_path / "copy.tif"
    shutil.copy(cog, copy)
    data = bytearray(copy.read_bytes())
    how(data)
    copy.write_bytes(bytes(data))
    with pytest.raises(InputError) as error:
        check_written(copy, tmp_path / "out.tif")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'out.tif'}: could not write the output (the file read back is incomplete")
    return message


def test_a_whole_cog_passes_and_declares_its_tile_checks(cog, tmp_path) -> None:
    assert _declares_tile_checks(cog)
    check_written(cog, tmp_path / "out.tif")


def test_a_cog_that_ends_early_fails(cog, tmp_path) -> None:
    offset, size = tile(cog, 1, 2, 1)  # the last full-resolution tile (its mask tile follows it)
    cut = offset + size // 2
    message = damaged(cog, tmp_path, lambda data: data.__delitem__(slice(cut, None)))
    assert f"the file ends before tile 2,1 of band 1 of TIFF directory 1 (at byte {cut:,})" in message


def test_a_hole_of_zeros_in_a_cog_fails(cog, tmp_path) -> None:
    offset, size = tile(cog, 1, 1, 0)  # a full-resolution tile in the middle of the file

    def hole(data: bytearray) -> None:
        data[offset - 4 : offset + size + 4] = bytes(size + 8)

    assert "tile 1,0 of band 1 of TIFF directory 1 is not what was written there" in damaged(cog, tmp_path, hole)


def test_a_tile_that_holds_another_tiles_bytes_fails(cog, tmp_path) -> None:
    offset, size = tile(cog, 3, 0, 0)  # an overview tile, its leader intact, its bytes another tile's
    other, other_size = tile(cog, 1, 0, 0)

    def swap(data: bytearray) -> None:
        data[offset : offset + size] = (bytes(data[other : other + other_size]) * 2)[:size]

    assert "tile 0,0 of band 1 of TIFF directory 3 is not what was written there" in damaged(cog, tmp_path, swap)


def test_a_mask_tile_is_checked_too(cog, tmp_path) -> None:
    offset, size = tile(cog, 2, 0, 1)  # directory 2: the full-resolution mask

    def leader(data: bytearray) -> None:
        data[offset - 4 : offset] = struct.pack("<I", size + 1)

    assert "tile 0,1 of band 1 of TIFF directory 2 is not what" in damaged(cog, tmp_path, leader)


def test_the_tile_that_ends_the_file_must_decode(cog, tmp_path) -> None:
    """Its leader and trailer intact, its compressed bytes garbled (the others are not decoded)."""
    with rasterio.open(cog) as src:
        directories = 2 * (1 + len(src.overviews(1)))
    tiles = [tile(cog, d, i, j) for d in range(1, directories + 1) for i in range(3) for j in range(2)
             if d <= 2 or (i, j) == (0, 0)]
    offset, size = max(tiles)
    assert offset + size + 4 == cog.stat().st_size

    def garble(data: bytearray) -> None:
        data[offset : offset + size - 4] = b"\xff" * (size - 4)
        data[offset + size - 4 : offset + size] = data[offset + size : offset + size + 4]  # the trailer agrees

    damaged(cog, tmp_path, garble)


def test_a_plain_geotiff_without_leaders_is_decoded_block_by_block(tmp_path) -> None:
    path = tmp_path / "plain.tif"
    profile = {"driver": "GTiff", "width": 512, "height": 512, "count": 1, "dtype": "uint8", "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate", **GRID}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.random.default_rng(1).integers(0, 256, (1, 512, 512), dtype=np.uint8))
    assert not _declares_tile_checks(path)
    check_written(path, tmp_path / "out.tif")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(InputError, match=r"out\.tif: could not write the output \(the file read back is incomplete"):
        check_written(path, tmp_path / "out.tif")



def test_silencing_the_grid_warning_is_one_thread_at_a_time() -> None:
    """predict checks its probability and mask COGs in two writer threads, each silencing GDAL's "Dataset has
    no geotransform" note for the COG's TIFF directories. warnings.catch_warnings is not thread-safe (its exit
    restores the filters it saw on entry), so the first thread out unsilenced the second, and CI printed the
    note in a 4-class predict (tests/reliability/test_unclear.py). A second thread now waits outside."""
    import threading

    from eoseg.geo.raster import no_grid_warning

    inside, leave, order = threading.Event(), threading.Event(), []

    def first() -> None:
        with no_grid_warning():
            inside.set()
            leave.wait(5)
            order.append("first leaves")

    def second() -> None:
        inside.wait(5)
        with no_grid_warning():
            order.append("second enters")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(5)
    threads[1].join(0.3)  # the second thread must be waiting, not inside
    order.append("released")
    leave.set()
    for thread in threads:
        thread.join(5)
    assert order == ["released", "first leaves", "second enters"]
