"""Window layout of a scene: square windows with overlap that cover every pixel, in bands.

Windows are ``size`` pixels wide, start every ``size - overlap`` pixels, and the last window of a row
or column is moved back so that it ends on the scene's last pixel (no window reaches past the scene
unless the scene is smaller than one window, in which case that window is padded). Windows are visited
band by band across the scene's shorter side (``order="auto"``: row bands when the scene is at least as
tall as it is wide, column bands when it is wider), so the pixels still waiting for a neighbouring
window (the blend's frontier) span the shorter side, whatever the longer one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from eoseg.errors import ConfigError


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride`` pixels, the last one ending at ``length``."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return starts


@dataclass(frozen=True)
class SceneWindow:
    """One window: its offsets in the scene and its place in the layout (``band``: along the walk)."""

    index: int
    band: int
    row_off: int
    col_off: int
    size: int

    def clipped(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of this window that lie inside a ``height`` x ``width`` scene."""
        return min(self.size, height - self.row_off), min(self.size, width - self.col_off)


@dataclass(frozen=True)
class WindowLayout:
    """Windows of ``size`` with ``overlap`` over a ``height`` x ``width`` scene."""

    height: int
    width: int
    size: int
    overlap: int
    order: Literal["auto", "rows", "columns"] = "auto"

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"scene must have at least one pixel, got {self.height}x{self.width}")
        if self.size < 1:
            raise ConfigError(f"predict.window: must be at least 1 pixel (got {self.size})")
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

    def __iter__(self) -> Iterator[SceneWindow]:
        """Windows band by band: row-major, or column-major when :attr:`by_columns`."""
        index = 0
        if self.by_columns:
            for band, col in enumerate(self.col_starts):
                for row in self.row_starts:
                    yield SceneWindow(index, band, row, col, self.size)
                    index += 1
            return
        for band, row in enumerate(self.row_starts):
            for col in self.col_starts:
                yield SceneWindow(index, band, row, col, self.size)
                index += 1
