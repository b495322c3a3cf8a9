"""A VRT mosaic over many rasters of one grid family (what ``gdalbuildvrt`` writes), so that QGIS opens a
whole predicted area as one layer.

The rasters must share CRS, pixel size, band count and dtype (the outputs of one ``eoseg predict`` run
over one area do). The mosaic's extent is the union of theirs; sources are referenced relative to the
VRT. Nodata pixels of a later raster do not cover an earlier one (``ComplexSource`` with ``NODATA``);
rasters whose validity is an internal mask band (uint8 probabilities) get a mask band in the VRT built
from their masks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio
from rasterio.enums import MaskFlags

from eoseg.errors import InputError
from eoseg.geo.atomic import write_text_atomic

_VRT_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def build_vrt(sources: Sequence[str | os.PathLike[str]], target: str | os.PathLike[str]) -> Path:
    """Write ``target`` (.vrt) mosaicking ``sources``; :class:`InputError` when they do not share a grid."""
    target = Path(target)
    if not sources:
        raise InputError(f"{target}: no rasters to mosaic")
    infos = []
    for path in sources:
        with rasterio.open(path) as src:
            per_dataset = all(MaskFlags.per_dataset in flags for flags in src.mask_flag_enums)
            infos.append((Path(path), src.crs, src.transform, src.width, src.height, src.count, src.dtypes[0],
                          src.nodata, per_dataset, src.descriptions))
    first = infos[0]
    _, crs, transform, _, _, count, dtype, nodata, masked, descriptions = first
    if transform.b or transform.d:
        raise InputError(f"{first[0]}: rotated rasters cannot be mosaicked into a VRT")
    for path, c, t, _, _, n, d, _, _, _ in infos[1:]:
        if c != crs or (round(t.a, 9), round(t.e, 9)) != (round(transform.a, 9), round(transform.e, 9)):
            raise InputError(
                f"{path}: CRS or pixel size differs from {first[0].name} ({c} vs {crs}); a VRT mosaic needs "
                "one grid: mosaic scenes of one CRS and resolution together"
            )
        if (n, d) != (count, dtype):
            raise InputError(f"{path}: {n} band(s) of {d}, but {first[0].name} has {count} of {dtype}")
    res_x, res_y = transform.a, transform.e  # res_y < 0 for north-up rasters
    lefts = [t.c for _, _, t, *_ in infos]
    tops = [t.f for _, _, t, *_ in infos]
    rights = [t.c + w * res_x for _, _, t, w, *_ in infos]
    bottoms = [t.f + h * res_y for _, _, t, _, h, *_ in infos]
    left, top = min(lefts), max(tops) if res_y < 0 else min(tops)
    right = max(rights)
    bottom = min(bottoms) if res_y < 0 else max(bottoms)
    width = int(round((right - left) / res_x))
    height = int(round((bottom - top) / res_y))
    base = target.parent.resolve()

    def source_xml(kind: str, band: str, path: Path, t, w: int, h: int, nd: float | None) -> str:
        x = int(round((t.c - left) / res_x))
        y = int(round((t.f - top) / res_y))
        rel = os.path.relpath(path.resolve(), base)
        nodata_xml = f"<NODATA>{_nodata_text(nd)}</NODATA>" if nd is not None else ""
        return (
            f"    <{kind}><SourceFilename relativeToVRT=\"1\">{escape(rel)}</SourceFilename>"
            f"<SourceBand>{band}</SourceBand>"
            f"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{w}\" ySize=\"{h}\"/>"
            f"<DstRect xOff=\"{x}\" yOff=\"{y}\" xSize=\"{w}\" ySize=\"{h}\"/>{nodata_xml}</{kind}>"
        )

    vrt_type = _VRT_TYPES.get(dtype, "Float32")
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if crs is not None:
        lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{left!r}, {res_x!r}, 0.0, {top!r}, 0.0, {res_y!r}</GeoTransform>")
    for b in range(1, count + 1):
        lines.append(f'  <VRTRasterBand dataType="{vrt_type}" band="{b}">')
        if descriptions and descriptions[b - 1]:
            lines.append(f"    <Description>{escape(descriptions[b - 1])}</Description>")
        if nodata is not None:
            lines.append(f"    <NoDataValue>{_nodata_text(nodata)}</NoDataValue>")
        for path, _, t, w, h, _, _, nd, _, _ in infos:
            lines.append(source_xml("ComplexSource", str(b), path, t, w, h, nd))
        lines.append("  </VRTRasterBand>")
    if masked and nodata is None:
        lines.append("  <MaskBand>")
        lines.append('  <VRTRasterBand dataType="Byte">')
        for path, _, t, w, h, *_ in infos:
            lines.append(source_xml("SimpleSource", "mask,1", path, t, w, h, None))
        lines.append("  </VRTRasterBand>")
        lines.append("  </MaskBand>")
    lines.append("</VRTDataset>")
    return write_text_atomic(target, "\n".join(lines) + "\n")


def _nodata_text(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
