"""A synthetic, georeferenced town for the demo: RGB aerial scenes at 0.5 m with building footprints.

Each scene is a street grid at a random orientation with blocks of buildings (rectangles, L-shapes and
courtyards, flat or gabled roofs in varied colours) that cast shadows in one sun direction for the
whole town, plus roads, paved lots, trees, grass, bare soil, blur and sensor noise. The footprints are
exactly the polygons whose pixels were painted as roofs, so they are a faithful label.

``make_town(out_dir, seed)`` writes one GeoTIFF and one GeoPackage per scene, plus ``train.csv``
(the training scenes, in the ``data.scenes_file`` format: id, image, mask), and returns a
:class:`TownScene` record per scene; the last scene is held out. Everything is deterministic by seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.features import rasterize
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path, write_text_atomic

DEMO_CRS = "EPSG:32633"
"""UTM zone 33N: the demo town lies in central Europe."""
NODATA = 0
"""Image nodata value; painted pixels are clipped to 1..255 so 0 only marks the nodata border."""
SUN_AZIMUTH_DEG = 135.0
"""Sun in the south-east: shadows fall towards the north-west in every scene."""
SUN_ELEVATION_DEG = 50.0

ROOF_COLOURS = {
    "terracotta": (178, 86, 62),
    "dark red": (128, 58, 52),
    "brown": (118, 94, 72),
    "slate": (84, 90, 98),
    "grey": (158, 158, 154),
    "light grey": (198, 197, 190),
    "white": (226, 223, 214),
    "blue metal": (88, 112, 146),
    "green metal": (86, 122, 96),
}
GRASS = np.array([88, 122, 64], np.float32)
DRY_GRASS = np.array([148, 142, 94], np.float32)
SOIL = np.array([152, 124, 94], np.float32)
ASPHALT = np.array([92, 93, 97], np.float32)
CONCRETE = np.array([168, 166, 158], np.float32)
TREE = np.array([46, 84, 40], np.float32)
SHADOW_FACTOR = np.array([0.42, 0.44, 0.52], np.float32)  # shadows are dark and slightly blue

TRAIN_CSV = "train.csv"
ShapeKind = Literal["rectangle", "L", "courtyard"]


@dataclass(frozen=True)
class TownStyle:
    """How a town looks: its roof palette and where the sun stands (a second style = a domain shift)."""

    roofs: dict[str, tuple[int, int, int]]
    sun_azimuth_deg: float = SUN_AZIMUTH_DEG
    sun_elevation_deg: float = SUN_ELEVATION_DEG


DEFAULT_STYLE = TownStyle(ROOF_COLOURS)
SHIFTED_STYLE = TownStyle(
    {"orange tile": (206, 122, 58), "black": (52, 50, 54), "teal metal": (62, 128, 132),
     "sand": (200, 178, 132), "purple slate": (104, 84, 112), "rust": (150, 72, 40)},
    sun_azimuth_deg=240.0,
    sun_elevation_deg=35.0,
)
"""A second town for domain-shift experiments: other roof colours, afternoon sun from the south-west."""
PARTIAL_STYLE = TownStyle(
    {"terracotta": ROOF_COLOURS["terracotta"], "grey": ROOF_COLOURS["grey"], "white": ROOF_COLOURS["white"],
     "blue metal": ROOF_COLOURS["blue metal"],
     "weathered tile": (152, 94, 78), "dark slate": (68, 72, 80), "warm grey": (176, 166, 146),
     "faded green metal": (106, 130, 114), "dark brown": (100, 74, 58)},
    sun_azimuth_deg=240.0,
    sun_elevation_deg=40.0,
)
"""A partial shift, as a new city of the same region: four of the default roof colours, five new ones near
the default ones (weathered, darker, tinted or faded versions), afternoon sun from the south-west.

The fifth new colour is a darker brown (nearest: the default brown at 30 RGB units, asphalt at 44). It was a
light brown (146, 112, 84) until 2026-12-03: 17 units from :data:`SOIL`, nearer than to any roof colour and
within the per-building brightness jitter (+-12 %), so its roofs could not be told from bare soil by colour
and the teacher missed all of them (15/15 and 34/34 in the self-training benchmark)."""


@dataclass(frozen=True)
class TownScene:
    """One generated scene: its GeoTIFF, its footprints file and whether it is for training or held out."""

    id: str
    image: Path
    footprints: Path
    split: Literal["train", "holdout"]
    buildings: int


@dataclass(frozen=True)
class Building:
    footprint: Polygon  # pixel coordinates (col, row)
    kind: ShapeKind
    roof: str
    gabled: bool
    height_m: float
    angle_deg: float


def make_town(
    out_dir: str | Path,
    seed: int = 0,
    n_scenes: int = 5,
    size: int = 512,
    resolution: float = 0.5,
    crs: str = DEMO_CRS,
    holdout: int = 1,
    nodata_border: bool = True,
    style: TownStyle = DEFAULT_STYLE,
) -> list[TownScene]:
    """Generate ``n_scenes`` scenes of ``size`` x ``size`` pixels into ``out_dir``; the last ``holdout`` are held out.

    Writes ``<id>.tif`` (uint8 RGB, tiled, nodata 0) and ``<id>.gpkg`` (building footprints with attributes
    kind, roof, gabled, height_m) per scene, and ``train.csv``. With ``nodata_border`` the first scene has a
    nodata corner, as at the edge of an orthomosaic. ``style`` sets roof colours and sun (e.g.
    :data:`SHIFTED_STYLE`). Returns the scene records in order (training first).
    """
    if n_scenes < 2 or not 1 <= holdout < n_scenes:
        raise InputError(f"make_town: n_scenes={n_scenes}, holdout={holdout}; need at least one training and "
                         "one held-out scene (n_scenes >= 2, 1 <= holdout < n_scenes)")
    if size < 128:
        raise InputError(f"make_town: size={size} px is too small for a town; use at least 128")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scenes = []
    for index, scene_seed in enumerate(np.random.SeedSequence(seed).spawn(n_scenes)):
        rng = np.random.default_rng(scene_seed)
        scene_id = f"town{seed}-{index:02d}"
        split: Literal["train", "holdout"] = "holdout" if index >= n_scenes - holdout else "train"
        image, buildings = paint_scene(rng, size, resolution, nodata_border and index == 0, style)
        # scenes lie side by side on a row of the UTM grid, a gap apart
        origin = Affine.translation(380_000.0 + index * size * resolution * 1.25, 5_800_000.0)
        transform = origin @ Affine.scale(resolution, -resolution)
        image_path = write_image(out_dir / f"{scene_id}.tif", image, transform, crs)
        footprints_path = write_footprints(out_dir / f"{scene_id}.gpkg", buildings, transform, crs)
        scenes.append(TownScene(scene_id, image_path, footprints_path, split, len(buildings)))
    write_scene_list(out_dir / TRAIN_CSV, [s for s in scenes if s.split == "train"])
    return scenes


# --------------------------------------------------------------------------------------------- painting


def paint_scene(
    rng: np.random.Generator,
    size: int,
    resolution: float,
    nodata_corner: bool = False,
    style: TownStyle = DEFAULT_STYLE,
) -> tuple[np.ndarray, list[Building]]:
    """Paint one scene; return the uint8 (size, size, 3) image and its buildings (pixel coordinates)."""
    shape = (size, size)
    extent = box(0, 0, size, size)
    grid_angle = float(rng.uniform(0, 90))
    roads = _roads(rng, size, grid_angle, resolution)
    lots = _paved_lots(rng, size, grid_angle, roads, resolution)
    buildings = _buildings(rng, size, grid_angle, unary_union([roads, *lots]), resolution, style)
    trees = _trees(rng, size, unary_union([b.footprint for b in buildings] + [roads]), resolution)

    image = _ground(rng, shape)
    texture = 1.0 + 0.05 * _smooth_noise(rng, shape, 3)[..., None]
    _paint(image, lots, CONCRETE * texture)
    _paint(image, [roads], ASPHALT * texture)
    shade = _shadow_offset(resolution, style)
    shadows = [_sweep(b.footprint, shade * b.height_m) for b in buildings]
    shadows += [affinity.translate(t, *(shade * h)) for t, h in trees]
    shadow_mask = _burn([s.intersection(extent) for s in shadows], shape) > 0
    image[shadow_mask] *= SHADOW_FACTOR
    _paint_trees(rng, image, trees)
    _paint_roofs(rng, image, buildings, resolution, style)

    image = cv2.GaussianBlur(image, (0, 0), 0.7)  # optics
    image += rng.normal(0.0, 3.5, image.shape).astype(np.float32)  # sensor noise
    pixels = np.clip(np.rint(image), 1, 255).astype(np.uint8)
    if nodata_corner:
        pixels[_corner_mask(rng, size)] = NODATA
    kept = [b for b in buildings if not b.footprint.is_empty]
    return pixels, kept


def _ground(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Grass, dry grass and bare soil in patches, with fine texture."""
    wet = _smooth_noise(rng, shape, 48)
    soil = np.clip(_smooth_noise(rng, shape, 32) - 0.6, 0, 1)[..., None]
    dryness = (1 / (1 + np.exp(-2.5 * wet)))[..., None]
    ground = GRASS * (1 - dryness) + DRY_GRASS * dryness
    ground = ground * (1 - soil) + SOIL * soil
    fine = 1.0 + 0.07 * _smooth_noise(rng, shape, 2)[..., None] + 0.04 * _smooth_noise(rng, shape, 8)[..., None]
    return (ground * fine).astype(np.float32)


def _roads(rng: np.random.Generator, size: int, angle: float, resolution: float) -> BaseGeometry:
    """A street grid at ``angle``: 55-80 m blocks, 5-8 m wide streets, some streets missing."""
    spacing = rng.uniform(55, 80) / resolution
    centre = size / 2
    half = size  # lines long enough to cross the scene at any angle
    lines = []
    for direction in (0.0, 90.0):
        offset = rng.uniform(0, spacing)
        for k in range(-int(half / spacing) - 1, int(half / spacing) + 2):
            if rng.random() < 0.2:
                continue
            width = rng.uniform(5, 8) / resolution
            pos = offset + k * spacing
            line = LineString([(-half, pos), (half, pos)]).buffer(width / 2, cap_style="flat")
            lines.append(affinity.rotate(affinity.translate(line, centre, centre - size / 2),
                                         angle + direction, origin=(centre, centre)))
    return unary_union(lines).intersection(box(0, 0, size, size))


def _paved_lots(
    rng: np.random.Generator, size: int, angle: float, roads: BaseGeometry, resolution: float
) -> list[Polygon]:
    """A few concrete parking lots and squares: building-like in colour, but flat and shadowless."""
    lots: list[Polygon] = []
    for _ in range(int(rng.integers(2, 6))):
        w, h = rng.uniform(10, 30, 2) / resolution
        x, y = rng.uniform(0, size, 2)
        lot = affinity.rotate(box(x - w / 2, y - h / 2, x + w / 2, y + h / 2), angle, origin=(x, y))
        if not lot.intersects(roads) and not any(lot.intersects(o) for o in lots):
            lots.append(lot)
    return lots


def _buildings(
    rng: np.random.Generator,
    size: int,
    grid_angle: float,
    blocked: BaseGeometry,
    resolution: float,
    style: TownStyle = DEFAULT_STYLE,
) -> list[Building]:
    """Place buildings in the blocks, apart from each other and from streets and lots."""
    extent = box(0, 0, size, size)
    target = int(rng.uniform(0.8, 1.2) * 55 * (size * resolution / 256) ** 2)
    placed: list[Building] = []
    occupied = blocked.buffer(2.0 / resolution)
    for _ in range(target * 25):
        if len(placed) >= target:
            break
        footprint, kind, angle = _building_shape(rng, grid_angle, size, resolution)
        if footprint.intersects(occupied):
            continue
        clipped = footprint.intersection(extent)
        if clipped.area * resolution**2 < 30 or clipped.geom_type != "Polygon":
            continue
        gabled = kind == "rectangle" and rng.random() < 0.5
        roof = str(rng.choice(list(style.roofs)))
        height = float(rng.uniform(4, 14) if kind != "courtyard" else rng.uniform(8, 18))
        placed.append(Building(clipped, kind, roof, gabled, height, angle))
        occupied = occupied.union(footprint.buffer(rng.uniform(2.5, 6) / resolution))
    return placed


def _building_shape(
    rng: np.random.Generator, grid_angle: float, size: int, resolution: float
) -> tuple[Polygon, ShapeKind, float]:
    """A rectangle, L-shape or courtyard block, mostly aligned with the streets."""
    kind: ShapeKind = str(rng.choice(["rectangle", "L", "courtyard"], p=[0.55, 0.3, 0.15]))  # type: ignore[assignment]
    if kind == "courtyard":
        length, depth = rng.uniform(24, 40) / resolution, rng.uniform(20, 32) / resolution
    else:
        length = rng.uniform(8, 28) / resolution
        depth = min(length, rng.uniform(7, 16) / resolution)
    shape = box(-length / 2, -depth / 2, length / 2, depth / 2)
    if kind == "L":
        cut_l, cut_d = length * rng.uniform(0.4, 0.6), depth * rng.uniform(0.4, 0.6)
        sx, sy = rng.choice([-1, 1], 2)
        corner = box(length / 2 - cut_l, depth / 2 - cut_d, length / 2 + 1, depth / 2 + 1)
        shape = shape.difference(affinity.scale(corner, sx, sy, origin=(0, 0)))
    elif kind == "courtyard":
        wing = rng.uniform(7, 10) / resolution
        shape = shape.difference(box(-length / 2 + wing, -depth / 2 + wing, length / 2 - wing, depth / 2 - wing))
    angle = grid_angle + (rng.normal(0, 3) if rng.random() < 0.8 else rng.uniform(0, 90))
    x, y = rng.uniform(-10, size + 10, 2)
    shape = affinity.translate(affinity.rotate(shape, angle, origin=(0, 0)), x, y)
    return shape, kind, float(angle)


def _trees(
    rng: np.random.Generator, size: int, blocked: BaseGeometry, resolution: float
) -> list[tuple[Polygon, float]]:
    """Clusters of round tree crowns (never over a roof) with their heights in metres."""
    trees: list[tuple[Polygon, float]] = []
    keep_out = blocked.buffer(1.0)
    for _ in range(int(rng.integers(6, 14) * (size * resolution / 256) ** 2)):
        cx, cy = rng.uniform(0, size, 2)
        for _ in range(int(rng.integers(2, 10))):
            x, y = np.array([cx, cy]) + rng.normal(0, 8 / resolution, 2)
            crown = Point(x, y).buffer(rng.uniform(1.8, 4.5) / resolution, quad_segs=6)
            if not crown.intersects(keep_out):
                trees.append((crown, float(rng.uniform(4, 10))))
    return trees


def _paint_trees(rng: np.random.Generator, image: np.ndarray, trees: list[tuple[Polygon, float]]) -> None:
    """Crowns: dark green, each a little different, lit from the sun side, with leafy texture."""
    if not trees:
        return
    ids = _burn([t for t, _ in trees], image.shape[:2], values=range(1, len(trees) + 1))
    tone = np.concatenate([[1.0], rng.uniform(0.8, 1.2, len(trees))]).astype(np.float32)
    leafy = 1.0 + 0.18 * _smooth_noise(rng, image.shape[:2], 1.5)
    inside = ids > 0
    image[inside] = TREE * (tone[ids[inside]] * leafy[inside])[:, None]


def _paint_roofs(
    rng: np.random.Generator,
    image: np.ndarray,
    buildings: list[Building],
    resolution: float,
    style: TownStyle = DEFAULT_STYLE,
) -> None:
    """Roofs: a colour per building; gabled roofs have a lit and a shaded slope; flat roofs a parapet."""
    if not buildings:
        return
    shape = image.shape[:2]
    colours = np.array([(0, 0, 0)] + [style.roofs[b.roof] for b in buildings], np.float32)
    colours[1:] *= rng.uniform(0.88, 1.12, (len(buildings), 1)).astype(np.float32)
    ids = _burn([b.footprint for b in buildings], shape, values=range(1, len(buildings) + 1))
    light = np.ones(shape, np.float32)
    slopes = [_shaded_slope(b, style) for b in buildings if b.gabled]
    shaded = _burn(slopes, shape) > 0
    light[shaded] = 0.78
    flat = [b.footprint for b in buildings if not b.gabled]
    parapet = _burn([f.boundary.buffer(0.6 / resolution) for f in flat], shape) > 0
    light[parapet] *= 0.85
    light *= 1.0 + 0.04 * _smooth_noise(rng, shape, 1.5)
    inside = ids > 0
    image[inside] = colours[ids[inside]] * light[inside][:, None]


def _shaded_slope(building: Building, style: TownStyle = DEFAULT_STYLE) -> Polygon:
    """The half of a gabled roof that faces away from the sun (split along the ridge, the long axis)."""
    footprint = building.footprint
    centre = footprint.centroid
    a = math.radians(building.angle_deg)
    ridge = np.array([math.cos(a), math.sin(a)])
    normal = np.array([-ridge[1], ridge[0]])
    sun = -_shadow_offset(1.0, style)
    if normal @ sun > 0:  # keep the half on the far side from the sun
        normal = -normal
    far = 1e4
    p, q = np.array([centre.x, centre.y]) - far * ridge, np.array([centre.x, centre.y]) + far * ridge
    half = Polygon([p, q, q + far * normal, p + far * normal])
    return footprint.intersection(half)


def _shadow_offset(resolution: float, style: TownStyle = DEFAULT_STYLE) -> np.ndarray:
    """Ground shift (columns, rows) in pixels of a shadow cast by one metre of height."""
    length = 1.0 / math.tan(math.radians(style.sun_elevation_deg)) / resolution
    towards = math.radians(style.sun_azimuth_deg + 180.0)  # azimuth clockwise from north; rows grow southwards
    return np.array([math.sin(towards), -math.cos(towards)]) * length


def _sweep(footprint: Polygon, offset: np.ndarray) -> BaseGeometry:
    """The shadow of a vertical prism: the footprint swept along ``offset`` (a Minkowski sum with a segment)."""
    parts = [footprint, affinity.translate(footprint, *offset)]
    for ring in [footprint.exterior, *footprint.interiors]:
        coords = np.asarray(ring.coords)
        for p, q in zip(coords[:-1], coords[1:], strict=True):
            parts.append(Polygon([p, q, q + offset, p + offset]).buffer(0))
    return unary_union(parts)


def _corner_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A diagonal nodata corner covering a tenth to a fifth of the scene."""
    rows, cols = np.mgrid[0:size, 0:size]
    cut = rng.uniform(0.45, 0.65) * size
    return (size - 1 - rows) + cols < cut


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-ish noise with features about ``scale`` pixels across."""
    h, w = shape
    coarse = rng.standard_normal((max(2, int(h / scale) + 2), max(2, int(w / scale) + 2))).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _burn(geometries: list[BaseGeometry], shape: tuple[int, int], values: range | None = None) -> np.ndarray:
    """Rasterize pixel-coordinate geometries (pixel centres inside) into an int32 array."""
    geoms = list(geometries)
    burn = values if values is not None else [1] * len(geoms)
    pairs = [(g, v) for g, v in zip(geoms, burn, strict=True) if not g.is_empty]
    if not pairs:
        return np.zeros(shape, np.int32)
    return rasterize(pairs, out_shape=shape, fill=0, dtype="int32", transform=Affine.identity())


def _paint(image: np.ndarray, geometries: list[BaseGeometry], colour: np.ndarray) -> None:
    mask = _burn(geometries, image.shape[:2]) > 0
    image[mask] = colour[mask] if colour.ndim == 3 else colour


# ---------------------------------------------------------------------------------------------- writing


def write_image(path: Path, image: np.ndarray, transform: Affine, crs: str) -> Path:
    """Write a (H, W, 3) uint8 image as a tiled, compressed RGB GeoTIFF with nodata 0."""
    profile = {
        "driver": "GTiff", "width": image.shape[1], "height": image.shape[0], "count": 3, "dtype": "uint8",
        "crs": crs, "transform": transform, "nodata": NODATA, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "compress": "deflate", "photometric": "RGB",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(np.moveaxis(image, -1, 0))
        dst.descriptions = ("red", "green", "blue")
    return path


def write_scene_list(path: Path, scenes: list[TownScene]) -> Path:
    """A ``data.scenes_file`` CSV (id, image, mask) with paths relative to its folder."""
    frame = pd.DataFrame({"id": [s.id for s in scenes],
                          "image": [os.path.relpath(s.image, path.parent) for s in scenes],
                          "mask": [os.path.relpath(s.footprints, path.parent) for s in scenes]})
    return write_text_atomic(path, frame.to_csv(index=False))


def write_footprints(path: Path, buildings: list[Building], transform: Affine, crs: str) -> Path:
    """Write the footprints (pixel polygons mapped through ``transform``) to a GeoPackage."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    geometries = [affinity.affine_transform(bld.footprint, [a, b, d, e, c, f]) for bld in buildings]
    frame = gpd.GeoDataFrame(
        {
            "kind": [bld.kind for bld in buildings],
            "roof": [bld.roof for bld in buildings],
            "gabled": [bld.gabled for bld in buildings],
            "height_m": [round(bld.height_m, 2) for bld in buildings],
        },
        geometry=geometries,
        crs=crs,
    )
    with atomic_path(path) as tmp:
        frame.to_file(tmp, driver="GPKG", layer="buildings")
    return path
