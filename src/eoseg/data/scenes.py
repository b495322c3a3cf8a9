"""The scene list of a dataset: ``data.scenes`` in the config plus rows of ``data.scenes_file`` (CSV).

With ``data.format`` the file is a competition's own layout instead (``clouds``: Kaggle's ``train.csv``;
``geopose``: ``metadata.csv`` with ``train/`` beside it; both converted into scenes whose derived rasters
go to ``<data.root>/sources``; ``spacenet``, ``xbd`` and ``unosat``: the download folder, read in place).

CSV columns: ``id``, optional ``region``, then one column per image name (in order: the first image is
the reference grid) and one per target name (the names of ``data.targets``). Relative paths in the CSV
are taken relative to the CSV's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from eoseg.config.schema import DataSpec, SceneSpec
from eoseg.errors import ConfigError, InputError

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


def load_scenes(data: DataSpec) -> list[SceneSpec]:
    """All scenes of the dataset, checked: unique safe ids, the same image names, existing files."""
    scenes = list(data.scenes)
    if data.format is not None:
        scenes += format_scenes(data)
    elif data.scenes_file is not None:
        scenes += read_scenes_csv(data.scenes_file, list(data.targets))
    if not scenes:
        raise ConfigError("data.scenes: no scenes given; list them in data.scenes or pass a CSV (data.scenes_file)")
    seen: set[str] = set()
    for scene in scenes:
        if not SAFE_ID.match(scene.id):
            raise ConfigError(f"scene id {scene.id!r}: use letters, digits and _.-=+ only (it names files)")
        if scene.id in seen:
            raise ConfigError(f"scene id {scene.id!r} is used twice; scene ids must be unique")
        seen.add(scene.id)
        if list(scene.images) != list(scenes[0].images):
            raise ConfigError(
                f"scene {scene.id}: images {list(scene.images)} differ from {list(scenes[0].images)} of "
                f"scene {scenes[0].id}; every scene needs the same image names"
            )
        unknown = sorted(set(scene.targets) - set(data.targets))
        if unknown:
            raise ConfigError(
                f"scene {scene.id}: target(s) {unknown} are not configured in data.targets "
                f"(configured: {sorted(data.targets)})"
            )
    for scene in scenes:
        for kind, paths in (("image", scene.images), ("target", scene.targets)):
            for name, path in paths.items():
                if not Path(path).exists():
                    raise InputError(f"{path}: {kind} {name!r} of scene {scene.id} does not exist; fix the path")
    return scenes


SOURCES_DIR = "sources"


def format_scenes(data: DataSpec) -> list[SceneSpec]:
    """Scenes of a competition layout (``data.format``), its derived rasters written to ``root/sources``."""
    if data.scenes_file is None:
        raise ConfigError(
            f"data.format={data.format.name}: give the competition's file with --scenes (data.scenes_file)"
        )
    if data.format.name == "spacenet":
        from eoseg.formats.spacenet import spacenet_scenes

        return spacenet_scenes(Path(data.scenes_file), list(data.targets))
    if data.format.name == "unosat":
        from eoseg.formats.unosat import unosat_scenes

        return unosat_scenes(Path(data.scenes_file), list(data.targets))
    if data.format.name == "xbd":
        from eoseg.formats.xbd import xbd_scenes

        return xbd_scenes(Path(data.scenes_file), list(data.targets))
    out = Path(data.root) / SOURCES_DIR
    if data.format.name == "geopose":
        from eoseg.formats.geopose import GSD_IMAGE, geopose_scenes

        return geopose_scenes(data.scenes_file, data.format.unit, out, gsd=GSD_IMAGE in data.bands)
    from eoseg.formats.clouds import clouds_scenes

    return clouds_scenes(data.scenes_file, data.format.size, out)


def read_scenes_csv(path: Path, target_names: list[str]) -> list[SceneSpec]:
    """Scenes from a CSV file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: scenes file does not exist; give a CSV with columns id, region, <images>, <targets>")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc}); give columns id, region, <images>, <targets>") from exc
    if "id" not in frame.columns:
        raise InputError(f"{path}: scenes file has no 'id' column; columns: {', '.join(frame.columns)}")
    images = [c for c in frame.columns if c not in {"id", "region", *target_names}]
    if not images:
        raise InputError(f"{path}: scenes file has no image column; add one per image name (e.g. image)")
    base = path.parent

    def resolve(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else base / p

    return [
        SceneSpec(
            id=row["id"],
            region=row.get("region") or None,
            images={name: resolve(row[name]) for name in images},
            targets={name: resolve(row[name]) for name in target_names if name in row and row[name]},
        )
        for row in frame.to_dict("records")
    ]
