"""Pixels for people: display stretches, class colours, mask overlays and PNG encoding.

Shared by the training report and the quicklooks, so a class has the same colour everywhere.
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from eoseg.geo.products import IGNORE

IGNORE_RGB = (150, 150, 150)
"""Colour of ignored / nodata label pixels."""


def display_rgb(bands: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """A (H, W, 3) uint8 picture of a (C, H, W) array: the first three bands, or one band as grey.

    uint8 data is shown as is; other types get a 2-98 percentile stretch per band over ``valid`` pixels.
    Invalid pixels are black.
    """
    if bands.ndim == 2:
        bands = bands[None]
    picked = bands[:3] if bands.shape[0] >= 3 else np.repeat(bands[:1], 3, axis=0)
    if valid is None:
        valid = np.ones(picked.shape[1:], bool)
    if picked.dtype == np.uint8:
        rgb = picked.copy()
    else:
        rgb = np.zeros(picked.shape, np.uint8)
        values = picked.astype(np.float64)
        finite = valid & np.isfinite(values).all(axis=0)
        for i, band in enumerate(values):
            if not finite.any():
                break
            lo, hi = np.percentile(band[finite], [2, 98])
            scaled = (band - lo) / (hi - lo) if hi > lo else np.zeros_like(band)
            rgb[i] = np.clip(np.nan_to_num(scaled) * 255, 0, 255).astype(np.uint8)
        valid = finite
    rgb = np.moveaxis(rgb, 0, -1)
    rgb[~valid] = 0
    return np.ascontiguousarray(rgb)


def class_colours(n_classes: int) -> np.ndarray:
    """(n_classes, 3) uint8 colours: class 0 (background) black, then strong distinct colours (tab10)."""
    palette = (np.array(colormaps["tab10"].colors) * 255).astype(np.uint8)
    order = [1, 3, 0, 2, 4, 6, 8, 9, 5, 7]  # orange, red, blue, green, ... (legible over imagery)
    colours = np.zeros((max(n_classes, 1), 3), np.uint8)
    for k in range(1, n_classes):
        colours[k] = palette[order[(k - 1) % len(order)]]
    return colours


def colour_classes(labels: np.ndarray, n_classes: int, ignore: int | None = IGNORE) -> np.ndarray:
    """A (H, W, 3) uint8 picture of a class-index array; ``ignore`` pixels are grey."""
    colours = class_colours(n_classes)
    rgb = colours[np.clip(labels, 0, len(colours) - 1).astype(np.intp)]
    if ignore is not None:
        rgb[labels == ignore] = IGNORE_RGB
    return rgb


def overlay_classes(
    image: np.ndarray, labels: np.ndarray, n_classes: int, alpha: float = 0.5, ignore: int | None = IGNORE
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with every non-background class pixel tinted by its class colour.

    Class outlines are drawn at full strength so small objects stay visible.
    """
    labels = labels.astype(np.int64)
    coloured = colour_classes(labels, n_classes, ignore=None).astype(np.float32)
    foreground = (labels > 0) & (labels != ignore if ignore is not None else True)
    out = image.astype(np.float32)
    out[foreground] = (1 - alpha) * out[foreground] + alpha * coloured[foreground]
    edges = foreground & ~cv2.erode(foreground.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out[edges] = coloured[edges]
    return out.astype(np.uint8)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode a (H, W, 3) uint8 RGB array as PNG bytes."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} array as PNG")
    return data.tobytes()


def png_data_uri(png: bytes) -> str:
    """A ``data:`` URI that embeds PNG bytes in HTML (the page stays self-contained)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
