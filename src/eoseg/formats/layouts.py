"""Competition download folders -> the scene list of ``eoseg prepare`` (``eoseg prepare --layout NAME``).

Each layout reads a folder exactly as the competition published it and returns one
:class:`~eoseg.config.schema.SceneSpec` per image (or image pair), with its label file and its region:

- ``spacenet``: ``<AOI folder>/<RGB-PanSharpen|PS-RGB|...>/<prefix>_AOI_<n>_<City>_img<k>.tif`` and the
  label ``<AOI folder>/geojson*/**/<prefix>_<image id>.geojson``; region = the AOI of the image id.
- ``xbd``: ``<split>/images/<disaster>_<id>_{pre,post}_disaster.{png,tif}`` and
  ``<split>/labels/<same>_post_disaster.json``; images ``pre`` and ``post``, targets from the post JSON
  (every target of the config reads it), region = the disaster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError
from eoseg.formats.spacenet import aoi_of, spacenet_image_id

SPACENET_IMAGE_FOLDERS = ("RGB-PanSharpen", "PS-RGB", "PS-MS", "MUL-PanSharpen", "PAN", "MUL")
XBD_IMAGE = re.compile(r"^(?P<id>(?P<disaster>.+)_\d+)_(?P<when>pre|post)_disaster\.(?:png|tif|tiff)$")


def spacenet_scenes(folder: Path, targets: list[str]) -> list[SceneSpec]:
    """SpaceNet building folders: one scene per image with its buildings GeoJSON (see the module docstring)."""
    images = sorted(p for name in SPACENET_IMAGE_FOLDERS for p in folder.glob(f"**/{name}/*.tif"))
    if not images:
        raise InputError(f"{folder}: no SpaceNet images found (expected */RGB-PanSharpen/*.tif or */PS-RGB/*.tif)")
    labels = {p.stem: p for p in folder.glob("**/geojson*/**/*.geojson")}
    scenes = []
    for image in images:
        image_id = spacenet_image_id(image.stem)
        label = next((p for stem, p in labels.items() if stem.endswith(f"_{image_id}")), None)
        if label is None:
            raise InputError(f"{image}: no buildings GeoJSON ending in _{image_id}.geojson under a geojson* folder")
        scenes.append(SceneSpec(id=image_id, images={"image": image}, targets=dict.fromkeys(targets, label),
                                region=aoi_of(image_id)))
    return scenes


def xbd_scenes(folder: Path, targets: list[str]) -> list[SceneSpec]:
    """xBD / xView2 folders: one scene per pre/post pair with the post-disaster label JSON."""
    pairs: dict[str, dict[str, Path]] = {}
    disasters: dict[str, str] = {}
    for path in sorted(folder.glob("**/images/*")):
        found = XBD_IMAGE.match(path.name)
        if found:
            pairs.setdefault(found["id"], {})[found["when"]] = path
            disasters[found["id"]] = found["disaster"]
    if not pairs:
        raise InputError(f"{folder}: no xBD images found (expected */images/<disaster>_<id>_pre_disaster.png)")
    scenes = []
    for image_id, pair in sorted(pairs.items()):
        if set(pair) != {"pre", "post"}:
            missing = ({"pre", "post"} - set(pair)).pop()
            raise InputError(f"{next(iter(pair.values()))}: the {missing}-disaster image of {image_id} is missing")
        label = pair["post"].parent.parent / "labels" / f"{image_id}_post_disaster.json"
        if targets and not label.is_file():
            raise InputError(f"{label}: label JSON of {image_id} not found beside its images")
        scenes.append(SceneSpec(id=image_id, images={"pre": pair["pre"], "post": pair["post"]},
                                targets=dict.fromkeys(targets, label), region=disasters[image_id]))
    return scenes


LAYOUTS: dict[str, Callable[[Path, list[str]], list[SceneSpec]]] = {"spacenet": spacenet_scenes, "xbd": xbd_scenes}


def layout_scenes(name: str, folder: Path, targets: list[str]) -> list[SceneSpec]:
    """The scenes of a competition folder in layout ``name`` (one of :data:`LAYOUTS`)."""
    if name not in LAYOUTS:
        raise InputError(f"--layout {name!r}: unknown layout; choose one of {', '.join(LAYOUTS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: --layout {name} needs the competition's download folder; it does not exist")
    return LAYOUTS[name](folder, targets)
