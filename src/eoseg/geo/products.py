"""The prediction products eoseg writes and reads back, with one writer and one reader each.

- probability raster ``<name>.prob.tif``: one band per channel, band descriptions = what each channel learns
  (class, label or extra-channel names: ``eoseg.tasks.kinds.channel_names``) (its
  ``classes`` tag, as a mask's, names the values of the class mask it gives, its ``mask_kind`` tag the
  layout of that mask: :data:`MASK_KINDS`, its ``extra_channels`` tag how many trailing bands are not in it);
  ``uint8`` (p x 255, rounded) with validity in an internal mask band (every byte is a probability, so
  no nodata value fits), or ``float16`` (stored as float32 with NBITS=16) with nodata NaN;
- mask raster ``<name>.mask.tif``: ``uint8`` class index (one band, the ``classes`` tag names its values) or
  0/1 per channel (band descriptions = class names), nodata :data:`IGNORE`;
- value raster ``<name>.<head>.tif``: ``float32``, nodata NaN (regression heads);
- image-level heads ``<name>.heads.json``: ``{head: {"kind": ..., "mean": [...], ...}}``, scene means.

:data:`IGNORE` (255) is THE ignore / nodata value of every class raster eoseg writes or reads: target
chips, truth, masks and votes. Also here: grid and output checks and the vector writer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path, check_not_inputs, write_text_atomic
from eoseg.geo.cog import RasterSpec
from eoseg.geo.raster import RasterInfo, Source, raster_info, valid_mask

if TYPE_CHECKING:
    import geopandas as gpd

IGNORE = 255
"""The one ignore / nodata value of class rasters (targets, truth, masks, votes); classes are 0..254."""

ProbDtype = Literal["uint8", "float16"]
MaskKind = Literal["binary", "multiclass", "multilabel"]
"""Layouts of the mask probabilities give (the :class:`~eoseg.post.postprocess.Postprocessor`'s): one sigmoid
channel or a 2-class softmax -> one 0/1 class band; a softmax over K > 2 classes -> one class band; several
sigmoid channels -> one 0/1 band per channel. A probability raster's ``mask_kind`` tag says which."""
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)
# Polygons carry their raster's CRS; a raster without one (a competition's PNG grid, a scene eoseg has already
# warned about: NoCrsWarning) gives polygons without one, so pyogrio's generic note on writing them is noise.
warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning, module="pyogrio")

VECTOR_SUFFIXES = {".gpkg", ".parquet", ".geoparquet", ".geojson", ".json", ".shp", ".fgb"}
GEOJSON_SUFFIXES = {".geojson", ".json"}


class Grid(Protocol):
    """A raster grid: size, CRS and transform (a :class:`~eoseg.geo.raster.RasterInfo` is one)."""

    width: int
    height: int
    crs: CRS | None
    transform: Affine


def _spec(grid: Grid, count: int, dtype: str, nodata: float | None, resampling: str,
          band_names: Sequence[str], use_mask: bool = False, nbits: int | None = None,
          tags: dict[str, str] | None = None) -> RasterSpec:
    return RasterSpec(grid.width, grid.height, count, dtype, grid.crs, grid.transform, nodata, use_mask,
                      resampling, tuple(band_names), nbits, tuple((tags or {}).items()))


def probability_spec(grid: Grid, band_names: Sequence[str], dtype: ProbDtype = "uint8",
                     classes: Sequence[str] = (), mask_kind: MaskKind | None = None,
                     extra_channels: int = 0) -> RasterSpec:
    """The probability raster: uint8 with an internal validity mask, or float16 with nodata NaN.

    ``classes``: the names of the values 0..K-1 of the class mask these probabilities give (as
    :func:`mask_spec`'s, the ``classes`` tag :func:`mask_classes` reads), so a mask voted from them keeps them;
    ``mask_kind``: that mask's layout (:data:`MASK_KINDS`, the ``mask_kind`` tag :func:`probability_mask_kind`
    reads), so a vote of them gives the mask predict gives (softmax: one class band, not a band per class);
    ``extra_channels``: how many trailing bands are not in that mask (a footprint head's boundary and contact:
    the ``extra_channels`` tag :func:`probability_extra_channels` reads; written when there are any).
    """
    tags = {"classes": json.dumps(list(classes))} if classes else {}
    if mask_kind is not None:
        tags["mask_kind"] = mask_kind
    if extra_channels:
        tags["extra_channels"] = str(extra_channels)
    if dtype == "uint8":
        return _spec(grid, len(band_names), "uint8", None, "average", band_names, use_mask=True, tags=tags)
    return _spec(grid, len(band_names), "float32", float("nan"), "average", band_names, nbits=16, tags=tags)


def encode_probabilities(
    prob: np.ndarray, valid: np.ndarray, dtype: ProbDtype = "uint8"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``(data, valid)`` for :func:`probability_spec` from float probabilities ``(C, h, w)`` in [0, 1].

    NaN pixels are invalid too. uint8: the mask travels beside the bytes; float16: invalid pixels are NaN.
    """
    valid = valid & np.isfinite(prob).all(axis=0)
    if dtype == "uint8":
        scaled = np.clip(prob, 0.0, 1.0)  # one temporary, then in place: bands span the scene's width
        scaled *= np.float32(255.0)
        np.rint(scaled, out=scaled)
        out = np.zeros(prob.shape, np.uint8)  # NaN -> 0 (±inf were clipped); cheaper than nan_to_num first
        np.copyto(out, scaled, casting="unsafe", where=~np.isnan(scaled))
        return out, valid
    out = prob.astype(np.float16).astype(np.float32)
    out[:, ~valid] = np.nan
    return out, None


def scene_name(path: str | os.PathLike[str]) -> str:
    """Scene name of a product file: its name without suffixes like ``.mask.tif``."""
    name = Path(path).name
    return name.split(".")[0] or name


def decode_probabilities(data: np.ndarray) -> np.ndarray:
    """float32 probabilities of stored ``data`` (of :func:`encode_probabilities`, or read from the raster):
    uint8 ``k / 255`` (a new array; the same values as :func:`stored_probabilities` of the floats, about 4x
    cheaper than quantising them again), float32 as they are."""
    if data.dtype != np.uint8:
        return data
    out = data.astype(np.float32)
    out /= np.float32(255.0)
    return out


def stored_probabilities(prob: np.ndarray, dtype: ProbDtype = "uint8") -> np.ndarray:
    """The float32 probabilities that :func:`read_probabilities` gives back after writing ``prob``.

    The mask is made from these, so that it agrees with the written probability raster (and with what
    ``eoseg thresholds`` and ``eoseg ensemble`` read from it).
    """
    if dtype == "uint8":
        out = np.clip(prob, 0.0, 1.0) * np.float32(255.0)
        np.rint(out, out=out)
        out /= np.float32(255.0)
        return out.astype(np.float32, copy=False)
    return prob.astype(np.float16).astype(np.float32)


def read_probabilities(src: Source, window: Window | None = None) -> np.ndarray:
    """``float32 (C, h, w)`` probabilities in [0, 1] (uint8 / 255); NaN where nodata.

    Validity is the raster's mask (its internal mask band, else its nodata value) and finiteness, so a
    masked uint8 pixel stays nodata instead of becoming a probability.
    """
    data = src.read(window=window)
    valid = valid_mask(data, src.nodata) & (src.read_masks(window=window) > 0).all(axis=0)
    out = decode_probabilities(data).astype(np.float32, copy=False)  # uint8: a new array; float32: read's own
    out[:, ~valid] = np.nan
    return out


def mask_spec(grid: Grid, band_names: Sequence[str], classes: Sequence[str] = ()) -> RasterSpec:
    """The mask raster: uint8, nodata :data:`IGNORE` (one ``class`` band, or one 0/1 band per channel).

    ``classes``: the names of a class band's values 0..K-1, kept in the ``classes`` tag (:func:`mask_classes`).
    """
    tags = {"classes": json.dumps(list(classes))} if classes else None
    return _spec(grid, len(band_names), "uint8", IGNORE, "nearest", band_names, tags=tags)


def mask_classes(src: Source) -> list[str]:
    """The class names of a mask raster's values (a probability raster's: of the mask it gives) from its
    ``classes`` tag (a JSON list, or comma-separated names as another tool may write them); empty when none."""
    tagged = src.tags().get("classes", "").strip()
    if not tagged:
        return []
    return [str(c).strip() for c in (json.loads(tagged) if tagged.startswith("[") else tagged.split(","))]


def probability_mask_kind(src: Source) -> MaskKind | None:
    """The layout of the mask a probability raster gives (:data:`MASK_KINDS`), from its ``mask_kind`` tag;
    None when it has none (another tool's raster, or one predicted before the tag existed)."""
    kind = src.tags().get("mask_kind", "").strip()
    if not kind:
        return None
    if kind not in MASK_KINDS:
        raise InputError(f"{src.name}: its mask_kind tag {kind!r} is not one of {', '.join(MASK_KINDS)}; "
                         "fix or remove the tag (gdal_edit.py -unsetmd)")
    return kind  # type: ignore[return-value]


def probability_extra_channels(src: Source) -> int:
    """How many trailing bands of a probability raster are extra channels, not in the mask it gives (its
    ``extra_channels`` tag; 0 when it has none)."""
    tagged = src.tags().get("extra_channels", "").strip()
    if not tagged:
        return 0
    if not tagged.isdigit() or int(tagged) >= src.count:
        raise InputError(f"{src.name}: its extra_channels tag {tagged!r} is not a number of bands below its "
                         f"{src.count}; fix or remove the tag (gdal_edit.py -unsetmd)")
    return int(tagged)


def encode_mask(mask: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``uint8 (bands, h, w)`` rows for :func:`mask_spec`: invalid pixels set to :data:`IGNORE` (in place)."""
    mask = mask.astype(np.uint8, copy=False)
    mask[:, ~valid] = IGNORE
    return mask


def read_mask(src: Source, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values (bands, h, w), valid (h, w))`` of a mask raster; nodata, masked pixels and IGNORE are invalid.

    A raster without a nodata value (e.g. an external 0/1 mask) uses :data:`IGNORE` as nodata.
    """
    data = src.read(window=window)
    nodata = src.nodata if src.nodata is not None else IGNORE
    valid = valid_mask(data, nodata) & (src.read_masks(window=window) > 0).all(axis=0)
    return data, valid


def value_spec(grid: Grid, band_names: Sequence[str]) -> RasterSpec:
    """A value raster (regression heads): float32, nodata NaN."""
    return _spec(grid, len(band_names), "float32", float("nan"), "average", band_names)


def read_values(src: Source, window: Window | None = None) -> np.ndarray:
    """``float32 (bands, h, w)`` values of a value raster; NaN where nodata or masked."""
    data = src.read(window=window).astype(np.float32)
    valid = valid_mask(data, src.nodata) & (src.read_masks(window=window) > 0).all(axis=0)
    data[:, ~valid] = np.nan
    return data


def write_heads(path: str | os.PathLike[str], heads: dict[str, dict[str, Any]]) -> Path:
    """Write image-level head values ``{head: {"kind", "mean", ...}}`` as JSON (atomically)."""
    return write_text_atomic(path, json.dumps(heads, indent=2))


def read_heads(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a ``heads.json`` written by :func:`write_heads`; InputError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: heads file not found; give the <scene>.heads.json that `eoseg predict` wrote")
    try:
        heads = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a heads.json file ({exc}); give the one `eoseg predict` wrote") from exc
    if not isinstance(heads, dict) or not all(isinstance(v, dict) and "mean" in v for v in heads.values()):
        raise InputError(f"{path}: not a heads.json file (expected {{head: {{mean: [...]}}}}); "
                         "give the one `eoseg predict` wrote")
    return heads


def check_same_grid(
    paths: Sequence[str | os.PathLike[str]], what: str = "rasters", same_bands: bool = True
) -> list[RasterInfo]:
    """Infos of ``paths``; an :class:`InputError` names the first raster whose grid differs from the first."""
    infos = [raster_info(p) for p in paths]
    first = infos[0]
    for info in infos[1:]:
        if not first.same_grid(info):
            raise InputError(
                f"{info.path}: not on the grid of {first.path.name} ({_grid(info)} vs {_grid(first)}); "
                f"{what} must share CRS, transform and size: warp it first (gdalwarp) or predict on one grid"
            )
        if same_bands and info.count != first.count:
            raise InputError(
                f"{info.path}: has {info.count} band(s) but {first.path.name} has {first.count}; "
                f"{what} must have the same bands"
            )
    return infos


def _grid(info: RasterInfo) -> str:
    crs = info.crs.to_string() if info.crs else "no CRS"
    return f"{info.width}x{info.height} px, {crs}, origin ({info.transform.c:g}, {info.transform.f:g}), res {info.res}"


def check_writable(path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Raise an :class:`InputError` when ``path`` cannot be written (folder not writable, a file in the way)
    or is one of the command's ``inputs`` (it would overwrite it)."""
    path = Path(path)
    check_not_inputs(inputs, files=[path])
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{path}: cannot write the output: {ancestor} is a file, not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(
            f"{path}: output folder {ancestor} is not writable; choose another --out or fix its permissions"
        )
    return path


def check_vector_path(path: str | os.PathLike[str], crs: CRS | None,
                      inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Raise an :class:`InputError` when polygons in ``crs`` cannot be written to ``path`` (the rule of
    :func:`write_vector`): an unknown format, GeoJSON for polygons without a CRS, or a path
    :func:`check_writable` refuses. Commands call it before tracing a mask, so a refusal costs nothing. An
    output that is one of the ``inputs`` is refused first, whatever its format, as by every command."""
    path = Path(path)
    check_not_inputs(inputs, files=[path])
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise InputError(f"{path}: unknown vector format {suffix!r}; use one of {', '.join(sorted(VECTOR_SUFFIXES))}")
    if crs is None and suffix in GEOJSON_SUFFIXES:
        raise InputError(
            f"{path}: these polygons have no CRS (pixel coordinates), but GeoJSON readers take coordinates as "
            "WGS84 longitude/latitude; write .gpkg or .fgb instead"
        )
    return check_writable(path)


def write_vector(frame: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write polygons atomically; the format follows the suffix (.gpkg, .parquet, .geojson, .shp, .fgb).

    A Shapefile is several files: they are written into a temporary folder and moved beside each other.
    Polygons without a CRS (pixel coordinates of an image that has none, e.g. an xView2 PNG) are refused as
    GeoJSON: RFC 7946 GeoJSON is WGS84 longitude/latitude only, and GDAL (so QGIS, geopandas) reads a file
    without a ``crs`` member as EPSG:4326 (a ``"crs": null`` too; its RFC7946 option only reprojects to
    CRS84), which would put pixel polygons near (0°, 0°). GeoPackage, FlatGeobuf, GeoParquet and
    Shapefile store "no CRS" (GeoPackage: GDAL's undefined SRS) and read back without one.
    """
    path = check_vector_path(path, frame.crs)
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".geoparquet"}:
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp)
        return path
    if suffix != ".shp":
        with atomic_path(path) as tmp:
            frame.to_file(tmp, layer=path.stem, engine="pyogrio")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        frame.to_file(staging / path.name, engine="pyogrio")
        for part in sorted(staging.iterdir(), key=lambda p: p.suffix.lower() == ".shp"):  # .shp last
            os.replace(part, path.parent / part.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
