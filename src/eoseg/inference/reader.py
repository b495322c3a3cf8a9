"""Reading a scene window by window in background threads, turned into normalised model inputs.

The first image of a sample fixes the grid; the others are aligned onto it on the fly (WarpedVRT) when
their CRS or resolution differ. rasterio datasets are not thread-safe, so each reader thread opens its
own handles, and each handle has its own GDAL block cache: the threads therefore read windows of a layout
by runs (:meth:`~eoseg.inference.windows.WindowLayout.part`: thread k the k-th run of every band), so
that a file block under neighbouring windows is decoded by one thread, not by every thread that was dealt
one of them in turn (2 threads dealt windows in turn decoded ~1.8x the blocks of one). Windows are read
ahead in layout order, at most ``prefetch`` at a time (bounded memory), straight into the batch tensors
that the models take (one write per value, no stacking).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rasterio.windows import Window

from eoseg.data.bandmath import BandMath
from eoseg.data.stats import model_inputs
from eoseg.errors import InputError
from eoseg.geo.raster import (
    RasterInfo,
    align_to,
    check_overlap,
    open_raster,
    raster_info,
    read_window,
    valid_mask,
)
from eoseg.inference.stages import StageClock
from eoseg.inference.windows import SceneWindow, WindowLayout
from eoseg.models.bundle import ModelBundle


class NoCrsWarning(UserWarning):
    """A scene has no CRS: outputs are written without one."""


class DtypeWarning(UserWarning):
    """A scene's dtype differs from the training one and ``predict.allow_dtype`` lets it through."""


@dataclass(frozen=True)
class SceneImages:
    """The images of one scene, checked against the models: grid of the first image, nodata per image."""

    paths: dict[str, Path]
    reference: RasterInfo
    nodata: dict[str, float | None]
    aligned: dict[str, bool]  # True where the image is warped onto the reference grid

    @property
    def height(self) -> int:
        return self.reference.height

    @property
    def width(self) -> int:
        return self.reference.width


def check_scene(
    images: dict[str, Path], bundle: ModelBundle, allow_dtype: bool = False, georeferenced: bool = True
) -> SceneImages:
    """Check a scene's images against the model's image names, band counts and dtypes; find the grid.

    Raises :class:`InputError` for a missing image, a wrong band count, a dtype other than the training one
    (a :class:`DtypeWarning` instead with ``allow_dtype``, ``predict.allow_dtype``), or images that do not
    overlap; warns (:class:`NoCrsWarning`) when the scene has no CRS, unless ``georeferenced=False`` says
    that none is expected (a competition's pictures). A parameter, not a warnings filter around the call:
    the caller's filter would span predict's reader and writer threads, whose own (locked) filter changes
    it could undo or leak (``warnings.catch_warnings`` is not thread-safe, see ``no_grid_warning``).
    """
    expected = bundle.bands
    missing = [n for n in expected if n not in images]
    extra = [n for n in images if n not in expected]
    if missing or extra:
        given = ",".join(f"{n}=..." for n in images)
        raise InputError(
            f"scene {given}: the model takes images {list(expected)} but got {list(images)}; "
            f"give the scene as {','.join(f'{n}=FILE' for n in expected)}"
        )
    infos = {name: raster_info(images[name]) for name in expected}
    for name, info in infos.items():
        if info.count != len(expected[name]):
            raise InputError(
                f"{info.path}: scene has {info.count} band(s) but the model expects {len(expected[name])} "
                f"for image {name!r} ({', '.join(expected[name])}); "
                "give a scene with the bands the model was "
                "trained on"
            )
    trained = bundle.stats.get("dtypes", {})
    for name, info in infos.items():
        if trained.get(name) and trained[name] != info.dtype:
            channels = bundle.stats.get("channels") or [{}]
            low = min(c.get("min", math.nan) for c in channels)
            high = max(c.get("max", math.nan) for c in channels)
            what = (f"{info.path}: scene is {info.dtype} but the model was trained on {trained[name]} images "
                    f"(values {low:g} to {high:g} in training)")
            if allow_dtype:
                warnings.warn(f"{what}; predicting anyway (predict.allow_dtype=true): its values are used as they "
                              "are, so they must already be on the training scale", DtypeWarning, stacklevel=2)
                continue
            raise InputError(
                f"{what}; its values would be read on another scale: convert it to {trained[name]} with the training "
                f"scaling (e.g. gdal_translate -ot {_gdal_type(trained[name])} -scale ...), use a model trained on "
                "such scenes, or set predict.allow_dtype=true if its values are on the training scale already"
            )
    reference = infos[next(iter(expected))]
    if reference.crs is None and georeferenced:
        warnings.warn(
            f"{reference.path}: scene has no CRS; outputs are written without a CRS (if they must be "
            f"georeferenced, assign one first: rio edit-info --crs EPSG:CODE {reference.path})",
            NoCrsWarning,
            stacklevel=2,
        )
    aligned = {}
    nodata = {}
    for name, info in infos.items():
        aligned[name] = not reference.same_grid(info)
        if aligned[name]:
            check_overlap(reference, info, f"image {name!r}")
        nodata[name] = bundle.nodata_of(name, info)  # the dataset's rule, from the checkpoint's stats
    return SceneImages({n: Path(images[n]) for n in expected}, reference, nodata, aligned)


def _gdal_type(dtype: str) -> str:
    """GDAL's name of a numpy dtype (for gdal_translate -ot)."""
    return {"uint8": "Byte", "int8": "Int8"}.get(dtype, dtype.capitalize())


@dataclass
class WindowBatch:
    """Windows read and prepared straight into batch tensors (host memory; pinned for a GPU)."""

    windows: list[SceneWindow]
    inputs: list[torch.Tensor]  # per input recipe: float32 (B, N, size, size), invalid pixels 0
    valid: torch.Tensor  # bool (B, size, size): inside the scene and not nodata in any image


class InputRecipe:
    """Band math plus normalisation of one model (models with the same recipe share the work)."""

    def __init__(self, bundle: ModelBundle):
        self.bandmath = BandMath(bundle.inputs, bundle.bands, bundle.stats.get("scales"))
        self.stats = bundle.stats

    def key(self) -> tuple:
        return tuple(self.bandmath.inputs), repr(self.stats.get("scales")), repr(self.stats.get("channels"))

    @property
    def channels(self) -> int:
        return self.bandmath.channels

    def __call__(self, images: dict[str, np.ndarray], valid: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return model_inputs(self.bandmath, images, valid, self.stats, out)


class WindowReader:
    """Reads windows of a scene ahead in background threads, one dataset handle per thread."""

    def __init__(
        self,
        scene: SceneImages,
        recipes: Sequence[InputRecipe],
        workers: int = 2,
        prefetch: int = 8,
        resampling: str = "bilinear",
        clock: StageClock | None = None,
    ):
        """``clock``: where the threads add their ``read`` and ``prepare`` (band math + normalise) seconds."""
        self.scene = scene
        self.clock = clock or StageClock()
        self.recipes = list(recipes)
        self.workers = max(1, workers)
        self.prefetch = max(1, prefetch)
        self.resampling = resampling
        self._local = threading.local()
        self._opened: list = []
        self._lock = threading.Lock()

    def _sources(self) -> dict:
        sources = getattr(self._local, "sources", None)
        if sources is None:
            sources = {}
            for name, path in self.scene.paths.items():
                src = open_raster(path)
                opened = [src]
                if self.scene.aligned[name]:
                    src = align_to(src, self.scene.reference, self.resampling, self.scene.nodata[name])
                    opened.append(src)
                sources[name] = src
                with self._lock:
                    self._opened.extend(opened)
            self._local.sources = sources
        return sources

    def _buffer(self, name: str, src: object, size: int) -> np.ndarray:
        """This thread's array that windows of image ``name`` are read into (one per thread and image: the
        window is consumed before the thread reads the next one)."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        array = buffers.get(name)
        if array is None or array.shape[1:] != (size, size):
            array = buffers[name] = np.empty((src.count, size, size), np.result_type(*src.dtypes))
        return array

    def read_into(self, batch: WindowBatch, j: int) -> None:
        """Read all images of window ``j`` of ``batch`` (padded beyond the scene) and write every recipe's
        inputs and the valid pixels into slot ``j`` (no per-window arrays to stack afterwards)."""
        start = time.perf_counter()
        window = batch.windows[j]
        size = window.size
        native = Window(window.col_off, window.row_off, size, size)
        h, w = window.clipped(self.scene.height, self.scene.width)
        valid = batch.valid[j].numpy()
        valid[...] = False
        valid[:h, :w] = True
        images = {}
        for name, src in self._sources().items():
            nodata = self.scene.nodata[name]
            array = read_window(src, native, (size, size), fill=nodata, out=self._buffer(name, src, size))
            valid &= valid_mask(array, nodata)
            images[name] = array
        read = time.perf_counter()
        for recipe, inputs in zip(self.recipes, batch.inputs, strict=True):
            recipe(images, valid, out=inputs[j].numpy())
        self.clock.add("read", read - start)
        self.clock.add("prepare", time.perf_counter() - read)

    def batches(
        self, windows: Iterable[SceneWindow], size: int, pin_memory: bool = False, reuse: bool = False
    ) -> Iterator[WindowBatch]:
        """Batches of ``size`` windows (the last one smaller) in window order, read ahead in the threads;
        at most ``prefetch`` windows (rounded up to whole batches) are read ahead. ``pin_memory``: batch
        tensors in page-locked memory, so that the copy to a GPU does not block. ``reuse``: a batch's tensors
        are filled again with later windows once the next batch is asked for (no fresh allocation and page
        faults per batch: on the CPU they cost about as much as the band math), so the caller must be done
        with a batch, host copies included, before it takes the next one; off with ``pin_memory`` (a
        non-blocking copy to the GPU may still be reading it)."""
        ahead = max(1, -(-self.prefetch // size))
        pending: deque[tuple[WindowBatch, list[Future[None]]]] = deque()
        spare: list[WindowBatch] = []  # batches the caller has finished with (reuse)
        reuse = reuse and not pin_memory
        chunks = iter(windows)
        parts = self.workers

        def reader_of(j: int, window: SceneWindow, n: int) -> int:
            # a layout's windows: each thread its run of every band (WindowLayout.part), so that each of the
            # file's blocks is decoded by one thread's dataset; other windows: each thread a run of the batch
            return windows.part(window, parts) if isinstance(windows, WindowLayout) else j * parts // n

        with ExitStack() as threads:
            pools = [threads.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"eoseg-read{k}"))
                     for k in range(parts)]
            try:
                while chunk := list(itertools.islice(chunks, size)):
                    batch = self._allocate(chunk, pin_memory, spare)
                    pending.append((batch, [pools[reader_of(j, w, len(chunk))].submit(self.read_into, batch, j)
                                            for j, w in enumerate(chunk)]))
                    if len(pending) > ahead:
                        done = _done(*pending.popleft())
                        yield done
                        if reuse:
                            spare.append(done)
                while pending:
                    yield _done(*pending.popleft())
            finally:
                for _, futures in pending:
                    for future in futures:
                        future.cancel()

    def _allocate(self, windows: list[SceneWindow], pin_memory: bool, spare: list[WindowBatch]) -> WindowBatch:
        n, size = len(windows), windows[0].size
        if spare and spare[-1].valid.shape == (n, size, size):
            old = spare.pop()
            return WindowBatch(windows, old.inputs, old.valid)
        inputs = [torch.empty((n, r.channels, size, size), dtype=torch.float32, pin_memory=pin_memory)
                  for r in self.recipes]
        return WindowBatch(windows, inputs, torch.empty((n, size, size), dtype=torch.bool, pin_memory=pin_memory))

    def close(self) -> None:
        """Close every dataset the threads opened (VRTs before their files)."""
        with self._lock:
            for src in reversed(self._opened):
                src.close()
            self._opened.clear()

    def __enter__(self) -> WindowReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _done(batch: WindowBatch, futures: list[Future[None]]) -> WindowBatch:
    """``batch`` once every window of it is read (the first failure is raised)."""
    for future in futures:
        future.result()
    return batch
