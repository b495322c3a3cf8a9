"""SceneWriter: an interrupt while it is being set up leaves no temporary file beside the outputs.

Ctrl+C arrives wherever the main thread is; on a loaded machine that was once while the writer's thread was
starting, after both temporaries existed, and they were left behind."""

from __future__ import annotations

import threading

import pytest
from affine import Affine
from rasterio.crs import CRS

from eoseg.geo.cog import RasterSpec
from eoseg.inference.outputs import OutputRaster
from eoseg.inference.writer import SceneWriter

SPEC = RasterSpec(width=64, height=48, count=1, dtype="uint8", crs=CRS.from_epsg(32616),
                  transform=Affine(0.5, 0, 500000, 0, -0.5, 3700000), band_names=("building",))


def _outputs(tmp_path):
    return [OutputRaster(kind, tmp_path / f"city.{kind}.tif", SPEC, encode=lambda tile: (None, None))
            for kind in ("prob", "mask")]


def test_interrupt_while_the_writer_thread_starts_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "earlier.mask.tif").write_bytes(b"kept")

    def interrupted_start(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        SceneWriter(_outputs(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.mask.tif"]
    assert (tmp_path / "earlier.mask.tif").read_bytes() == b"kept"


def test_interrupt_while_naming_bands_leaves_nothing(tmp_path, monkeypatch):
    import rasterio.io

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rasterio.io.DatasetWriter, "set_band_description", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SceneWriter(_outputs(tmp_path))
    assert list(tmp_path.iterdir()) == []
