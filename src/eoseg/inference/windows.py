"""Window layout of a scene: square windows with overlap that cover every pixel, in bands.

Windows are ``size`` pixels wide, start every ``size - overlap`` pixels, and the last window of a row
or column is moved back so that it ends on the scene's last pixel (no window reaches past the scene
unless the scene is smaller than one window, in which case that window is padded). Windows are visited
band by band across the scene's shorter side (``order="auto"``: row bands when the scene is at least as
tall as it is wide, column bands when it is wider), so the pixels still waiting for a neighbouring
window (the blend's frontier) span the shorter side, whatever the longer one. When the bands are longer
than ``strip`` pixels, they are cut into strips of about ``strip`` pixels (whole windows) and the walk
goes strip by strip, band by band inside a strip: the frontier is then one strip wide, whatever the
scene's sides (the blend keeps the tiles on a border between strips out of memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from eoseg.errors import ConfigError

STRIP = 4096
"""Longest band (pixels across the walk) visited in one go; longer bands are walked in strips of about this."""


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride`` pixels, the last one ending at ``length``."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return starts


@dataclass(frozen=True)
class SceneWindow:
    """One window: its offsets in the scene and its place in the layout: ``index`` in the band walk (band by
    band across the whole scene, the order that fixes the blend's sums), ``band`` along the walk, ``strip``
    across it (0 when the bands are walked whole)."""

    index: int
    band: int
    row_off: int
    col_off: int
    size: int
    strip: int = 0

    def clipped(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of this window that lie inside a ``height`` x ``width`` scene."""
        return min(self.size, height - self.row_off), min(self.size, width - self.col_off)


@dataclass(frozen=True)
class WindowLayout:
    """Windows of ``size`` with ``overlap`` over a ``height`` x ``width`` scene; bands longer than ``strip``
    pixels are walked in strips (``None``: always whole bands)."""

    height: int
    width: int
    size: int
    overlap: int
    order: Literal["auto", "rows", "columns"] = "auto"
    strip: int | None = STRIP

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"scene must have at least one pixel, got {self.height}x{self.width}")
        if self.size < 1:
            raise ConfigError(f"predict.window: must be at least 1 pixel (got {self.size})")
        if self.strip is not None and self.strip < 1:
            raise ValueError(f"strip must be at least 1 pixel, got {self.strip}")
        if not 0 <= self.overlap < self.size:
            raise ConfigError(
                f"predict.overlap: must be in [0, window) = [0, {self.size}) (got {self.overlap}); "
                "lower predict.overlap or raise predict.window"
            )

    @property
    def stride(self) -> int:
        return self.size - self.overlap

    @cached_property
    def row_starts(self) -> list[int]:
        return window_starts(self.height, self.size, self.stride)

    @cached_property
    def col_starts(self) -> list[int]:
        return window_starts(self.width, self.size, self.stride)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    @property
    def by_columns(self) -> bool:
        """Whether windows are visited column band by column band (``auto``: when wider than tall)."""
        return self.order == "columns" or (self.order == "auto" and self.width > self.height)

    @property
    def band_starts(self) -> list[int]:
        """Window starts along the walk (one band each)."""
        return self.col_starts if self.by_columns else self.row_starts

    @property
    def across_starts(self) -> list[int]:
        """Window starts across the walk (along a band)."""
        return self.row_starts if self.by_columns else self.col_starts

    @cached_property
    def strips(self) -> list[list[int]]:
        """Positions in :attr:`across_starts` of each strip's windows: one strip when a band spans at most
        ``strip`` pixels, else strips of (nearly) equal window counts, each about ``strip`` pixels."""
        starts = self.across_starts
        across = self.height if self.by_columns else self.width
        if self.strip is None or across <= self.strip:
            return [list(range(len(starts)))]
        count = min(len(starts), -(-across // self.strip))
        per = -(-len(starts) // count)
        return [list(range(i, min(i + per, len(starts)))) for i in range(0, len(starts), per)]

    def part(self, window: SceneWindow, parts: int) -> int:
        """Which of ``parts`` contiguous runs of its band (inside its strip) ``window`` falls in, ``0 .. parts - 1``:
        the pieces of the scene that :class:`~eoseg.inference.reader.WindowReader`'s threads each read, so that
        a file block under two neighbouring windows is mostly read by one thread (each thread's dataset has its
        own block cache: windows dealt out in turn made every thread decode most blocks)."""
        positions = self.strips[window.strip]
        return (window.index % len(self.across_starts) - positions[0]) * parts // len(positions)

    def __iter__(self) -> Iterator[SceneWindow]:
        """Windows strip by strip, band by band inside a strip (row bands, or column bands when
        :attr:`by_columns`); with one strip, exactly the band walk (``index`` in order)."""
        across = len(self.across_starts)
        for strip, positions in enumerate(self.strips):
            for band, start in enumerate(self.band_starts):
                for a in positions:
                    row, col = (self.across_starts[a], start) if self.by_columns else (start, self.across_starts[a])
                    yield SceneWindow(band * across + a, band, row, col, self.size, strip)
