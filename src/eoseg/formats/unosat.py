"""UNOSAT Sentinel-1 building folders: one folder per city, VV and VH as separate files per acquisition.

The layout the challenge published::

    <MGRS>_<City>/s1a_<MGRS>_vh_<orbit>_<date>.tif     float32 backscatter (linear power), one band
    <MGRS>_<City>/s1a_<MGRS>_vv_<orbit>_<date>.tif
    <MGRS>_<City>/<MGRS>_<City>.shp                    building footprints of the city (train cities)

:func:`unosat_scenes` makes one scene per acquisition (images ``vv`` and ``vh``), region = the city folder,
so folds are by city and votes across acquisitions group by region.
"""

from __future__ import annotations

import re
from pathlib import Path

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError

VH_FILE = re.compile(r"^(?P<before>.*)_vh_(?P<after>.*)\.tiff?$", re.IGNORECASE)


def unosat_scenes(folder: Path, targets: list[str]) -> list[SceneSpec]:
    """Scenes of a UNOSAT folder (``data.format.name=unosat``), read in place (see the module docstring)."""
    scenes = []
    for vh in sorted(folder.glob("**/*_vh_*.tif*")):
        found = VH_FILE.match(vh.name)
        if not found:
            continue
        vv = vh.with_name(f"{found['before']}_vv_{found['after']}{vh.suffix}")
        if not vv.is_file():
            raise InputError(f"{vh}: its VV file {vv.name} is missing; UNOSAT gives VV and VH per acquisition")
        shapes = sorted(vh.parent.glob("*.shp"))
        if targets and len(shapes) != 1:
            raise InputError(f"{vh.parent}: expected one footprint shapefile per city folder, found {len(shapes)}")
        city = vh.parent.name
        scenes.append(SceneSpec(id=f"{city}_{found['after']}", images={"vv": vv, "vh": vh},
                                targets=dict.fromkeys(targets, shapes[0]) if targets else {}, region=city))
    if not scenes:
        raise InputError(f"{folder}: no UNOSAT acquisitions found (expected <city>/s1a_<tile>_vh_<orbit>_<date>.tif)")
    return scenes
