"""The resized-JPEG cache of ``pseudo-label`` on Kaggle clouds (``inputs/``): reused while the source is the
same, converted again when the source JPEG (or the training size) changes -- a stale copy was used silently."""

from __future__ import annotations

import os

import numpy as np

from eoseg.formats.clouds import cached_resized_image
from eoseg.geo.raster import open_raster

from .data import write_jpeg

SIZE = (32, 48)


def _jpeg(path, value: int) -> None:
    write_jpeg(path, np.full((3, 140, 210), value, np.uint8))


def test_cache_is_reused_while_the_source_is_unchanged(tmp_path):
    source = tmp_path / "a.jpg"
    _jpeg(source, 40)
    first = cached_resized_image(source, SIZE, tmp_path / "inputs")
    written = first.stat().st_mtime_ns
    again = cached_resized_image(source, SIZE, tmp_path / "inputs")
    assert again == first == tmp_path / "inputs" / "a.tif"
    assert again.stat().st_mtime_ns == written  # not converted again


def test_changed_source_rebuilds_the_cache(tmp_path):
    source = tmp_path / "a.jpg"
    _jpeg(source, 40)
    cached = cached_resized_image(source, SIZE, tmp_path / "inputs")
    with open_raster(cached) as src:
        assert abs(int(src.read(1).mean()) - 40) <= 2
    _jpeg(source, 200)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a newer file, even on coarse clocks
    cached = cached_resized_image(source, SIZE, tmp_path / "inputs")
    with open_raster(cached) as src:
        assert abs(int(src.read(1).mean()) - 200) <= 2


def test_other_training_size_rebuilds_the_cache(tmp_path):
    source = tmp_path / "a.jpg"
    _jpeg(source, 90)
    cached_resized_image(source, SIZE, tmp_path / "inputs")
    cached = cached_resized_image(source, (16, 24), tmp_path / "inputs")
    with open_raster(cached) as src:
        assert (src.height, src.width) == (16, 24)
