"""``eoseg predict``: run one or more checkpoints over whole scenes and write georeferenced rasters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.table import Table

from eoseg.cli.options import QUIET_OPTION
from eoseg.config.loader import apply_overrides, config_to_dict, read_source, save_config, validate_config
from eoseg.config.schema import ExperimentConfig
from eoseg.errors import ConfigError, InputError, require_files, require_models
from eoseg.geo.atomic import check_not_inputs
from eoseg.openmp import sleep_while_waiting
from eoseg.progress import console

CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".onnx")
OVERRIDE_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_][\w-]*)+$")
OVERRIDE_SECTIONS = ("predict", "post")


@dataclass
class PredictArgs:
    """Positional items of ``eoseg predict`` sorted into checkpoints, scenes and overrides."""

    checkpoints: list[Path] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def split_items(
    items: list[str],
    sections: tuple[str, ...] = OVERRIDE_SECTIONS,
    command: str = "predict",
    scenes: bool = True,
    scenes_given: bool = False,
) -> PredictArgs:
    """Checkpoints end in .ckpt/.safetensors/.onnx; ``a.b=value`` are overrides; everything else is a scene.

    Overrides may only touch ``sections`` (the rest comes from the checkpoint); ``scenes=False``: none needed.
    """
    args = PredictArgs()
    for item in items:
        key, sep, _ = item.partition("=")
        if sep and OVERRIDE_KEY.match(key):
            if key.split(".")[0] not in sections:
                names = [f"{s}.*" for s in sections]
                allowed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
                raise ConfigError(
                    f"override {item!r}: only {allowed} can be changed by eoseg {command} "
                    "(the rest comes from the checkpoint)"
                )
            args.overrides.append(item)
        elif not sep and Path(item).suffix.lower() in CHECKPOINT_SUFFIXES:
            args.checkpoints.append(Path(item))
        else:
            args.scenes.append(item)
    if not args.checkpoints:
        raise InputError(
            f"eoseg {command}: no checkpoint given; pass at least one .ckpt (or .onnx) file before the scenes"
        )
    if scenes and not args.scenes and not scenes_given:
        raise InputError(
            f"eoseg {command}: no scene given; pass a GeoTIFF, or pre=a.tif,post=b.tif for image pairs"
            + (" (or --scenes LIST)" if command == "predict" else "")
        )
    return args


def parse_scene(item: str, image_names: list[str]) -> dict[str, Path]:
    """``a.tif`` for single-image models, ``pre=a.tif,post=b.tif`` for models of several images."""
    if "=" not in item:
        if len(image_names) != 1:
            pairs = ",".join(f"{n}=FILE" for n in image_names)
            raise InputError(
                f"scene {item!r}: the model takes images {image_names}; give the scene as {pairs}"
            )
        return {image_names[0]: Path(item)}
    images: dict[str, Path] = {}
    for part in item.split(","):
        name, sep, path = part.partition("=")
        if not sep or not name or not path:
            raise InputError(
                f"scene {item!r}: expected name=path pairs separated by commas, e.g. pre=a.tif,post=b.tif"
            )
        images[name.strip()] = Path(path.strip())
    return images


def parse_scenes(items: list[str], image_names: list[str], given_by: str = "argument SCENE") -> list[dict[str, Path]]:
    """:func:`parse_scene` of each item; a missing image file is refused, naming ``given_by``."""
    require_scene_files(items, given_by)
    return [parse_scene(item, image_names) for item in items]


def require_scene_files(items: list[str], given_by: str = "argument SCENE") -> None:
    """Every file the scene items name exists (``a.tif``, ``pre=a.tif,post=b.tif``), checked before a model says
    which form it takes, so a mistyped scene is answered before the model libraries load."""
    named = [[item] if "=" not in item else [part.partition("=")[2].strip() for part in item.split(",")]
             for item in items]
    require_files([path for paths in named for path in paths if path], "raster file", given_by)


def load_models(paths: list[Path]) -> list:
    """One bundle per checkpoint: ``.onnx`` files run on onnxruntime, the others are eoseg checkpoints."""
    require_models(paths)  # before torch and onnxruntime load
    from eoseg.models.checkpoint import load_bundle
    from eoseg.models.onnx import load_onnx_bundle

    return [load_onnx_bundle(p) if p.suffix.lower() == ".onnx" else load_bundle(p) for p in paths]




def read_post_file(path: Path) -> dict:
    """The ``post`` / ``predict`` sections of an overlay YAML (as ``eoseg thresholds`` writes it)."""
    raw, label = read_source(path)
    unknown = sorted(set(raw) - set(OVERRIDE_SECTIONS))
    if unknown or not raw:
        raise ConfigError(
            f"{label}: --post takes a YAML with post: (and predict:) sections, e.g. the one `eoseg thresholds` "
            f"writes; found {unknown or 'nothing'}"
        )
    return raw


def resolve_config(config_dict: dict, overrides: list[str], post_file: Path | None = None) -> ExperimentConfig:
    """A checkpoint's config, then the ``--post`` file's sections, then the ``predict.*`` / ``post.*`` overrides."""
    if post_file is not None:
        for section, values in read_post_file(post_file).items():
            config_dict[section] = {**(config_dict.get(section) or {}), **(values or {})}
    return validate_config(apply_overrides(config_dict, overrides), "predict overrides")


def predict(
    items: list[str] = typer.Argument(
        ...,
        metavar="CKPT... SCENE... [KEY=VALUE]...",
        help="Checkpoints (.ckpt, or .onnx from `eoseg export`), scenes (a.tif, or pre=a.tif,post=b.tif) "
        "and predict.*/post.* overrides.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder for <scene>.prob.tif, <scene>.mask.tif, ..."
    ),
    quicklook: bool = typer.Option(
        False, "--quicklook", help="Also write <scene>.quicklook.png (image + mask)."
    ),
    quiet: bool = QUIET_OPTION,
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="Also write a competition submission: clouds (submission.csv from the JPEGs), "
        "geopose (<id>_AGL.tif + <id>_VFLOW.json per RGB tile), xview2 (localization + damage PNGs per "
        "pre=,post= pair).",
    ),
    post_file: Path | None = typer.Option(
        None, "--post", help="Overlay YAML with post: / predict: sections (e.g. from `eoseg thresholds`)."
    ),
    scenes_file: Path | None = typer.Option(
        None,
        "--scenes",
        help="A scene list: a text file with one scene per line (a.tif or pre=a.tif,post=b.tif; # comments) "
        "or a CSV with columns id and one per image name (paths relative to the file).",
    ),
    ray: bool = typer.Option(
        False, "--ray", help="One Ray task per scene (a local Ray instance unless --ray-address); resumes."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", metavar="ADDRESS", help="Join this Ray cluster (HOST:PORT or auto); implies --ray."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Skip scenes already complete in --out (their <scene>.done.json matches the outputs, inputs, "
        "models and settings); --ray always does.",
    ),
    mosaic: bool = typer.Option(
        False, "--mosaic", help="Also write mosaic.<output>.vrt over all scenes' rasters (one layer in QGIS)."
    ),
) -> None:
    """Predict whole scenes with one or more checkpoints (an ensemble), with blending, TTA and streaming.

    Example: eoseg predict runs/a/best.ckpt runs/b/best.ckpt city.tif --out pred predict.tta=d4
    post.threshold=0.4   (or --post post.yaml, the overlay `eoseg thresholds` writes)
    """
    sleep_while_waiting()  # before torch loads: OpenMP threads that spin between batches take the pipeline's cores
    args = split_items(items, scenes_given=scenes_file is not None)
    require_models(args.checkpoints)  # a mistyped path is answered before the model libraries load
    require_scene_files(args.scenes)
    from eoseg.inference.distributed import report_of, run_scenes
    from eoseg.inference.predictor import check_names, check_outputs_not_inputs, scene_name

    bundles = load_models(args.checkpoints)
    if ray or ray_address:
        args.overrides.append("predict.ray.enabled=true")
    if ray_address:
        args.overrides.append(f"predict.ray.address={ray_address}")
    config = resolve_config(config_to_dict(bundles[0].config), args.overrides, post_file)
    image_names = bundles[0].image_names
    if fmt is not None:  # a competition's own files: images it derives itself (geopose's gsd plane) are not given
        from eoseg.inference.competitions import given_images

        image_names = given_images(fmt, image_names)
    scenes = parse_scenes(args.scenes, image_names)  # typed ones must exist; --scenes: missing reported, others run
    names = [scene_name(s) for s in scenes]
    if scenes_file is not None:
        listed, listed_names = read_scene_list(scenes_file, image_names, list(bundles[0].config.data.targets))
        scenes, names = scenes + listed, names + listed_names
    check_names(names)
    check_not_inputs([*args.checkpoints, *(p for s in scenes for p in s.values())], files=[out, out / "config.yaml"])
    check_outputs_not_inputs(bundles, scenes, names, out)
    if fmt is not None:
        from eoseg.inference.competitions import FORMATS, predict_clouds, predict_geopose, predict_xview2

        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt}: unknown format; use one of {', '.join(FORMATS)}")
        images = [next(iter(s.values())) for s in scenes]
        if fmt == "xview2":
            results, pngs = predict_xview2(bundles, scenes, out, config.predict, config.post, not quiet)
            console.print(f"{len(pngs)} submission PNG(s) written to {out}", highlight=False)
        elif fmt == "clouds":
            results, submission = predict_clouds(bundles, images, out, config.predict, config.post, not quiet)
            console.print(f"submission written to {submission}", highlight=False)
        else:
            results, files = predict_geopose(bundles, images, out, config.predict, config.post, not quiet)
            console.print(f"{len(files)} submission file(s) written to {out}", highlight=False)
        reports = [report_of(r) for r in results]
    else:
        reports = run_scenes(
            bundles, scenes, names, out, config.predict, config.post, progress=not quiet, resume=resume or None
        )
    finished = [r for r in reports if r.status in ("done", "skipped")]
    if any(r.status == "done" for r in reports):
        save_config(config, out / "config.yaml")
    pictures: dict[str, list[Path]] = {r.name: [] for r in reports}
    if quicklook:
        from eoseg.post.vectorize import vectorize
        from eoseg.report.quicklook import quicklook_png

        for scene, report in zip(scenes, reports, strict=True):
            mask = out / f"{report.name}.mask.tif"
            if report.status in ("done", "skipped") and mask.is_file():
                png = out / f"{report.name}.quicklook.png"
                pictures[report.name].append(quicklook_png(next(iter(scene.values())), mask, png, vectorize(mask)))
    bad = [r for r in reports if r.status in ("missing", "failed")]
    if len(reports) == 1 and bad:  # one scene: its own line says it all (a table of one failed row does not)
        raise InputError(bad[0].error)
    mosaics = write_mosaics(out, finished) if mosaic and finished else []
    table = Table(
        "scene", "status", "windows", "Mpx/s", "outputs", title="eoseg predict", title_justify="left"
    )
    for r in reports:
        outputs = ", ".join(p.name for p in (*r.outputs, *pictures[r.name])) or r.error
        mpx = f"{r.mpx_per_s:.3g}" if r.status == "done" else ""
        table.add_row(r.name, r.status, str(r.windows or ""), mpx, outputs)
    console.print(table)
    if mosaics:
        console.print(f"mosaics: {', '.join(str(p) for p in mosaics)}", highlight=False)
    if bad:
        first = bad[0]
        others = " (the others are written)" if len(bad) < len(reports) else ""
        raise InputError(
            f"{len(bad)} of {len(reports)} scene(s) not predicted{others}; first: {first.name}: {first.error}"
        )


def read_scene_list(path: Path, image_names: list[str], targets: list[str]) -> tuple[list[dict[str, Path]], list[str]]:
    """Scenes and output names from a text file (one scene item per line) or a CSV (``id`` + image columns)."""
    from eoseg.data.scenes import read_scenes_csv
    from eoseg.inference.predictor import scene_name

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--scenes {path}: scene list not found; give a text file or CSV of scenes")
    if path.suffix.lower() == ".csv":
        specs = read_scenes_csv(path, targets)
        missing = [n for n in image_names if specs and n not in specs[0].images]
        if missing:
            raise InputError(
                f"--scenes {path}: no column for image(s) {missing}; the model takes images {image_names}"
            )
        return [{n: Path(s.images[n]) for n in image_names} for s in specs], [s.id for s in specs]
    base = path.parent
    scenes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        try:
            images = parse_scene(item, image_names)
        except InputError as exc:
            raise InputError(f"{path}:{number}: {exc}") from None
        scenes.append({n: p if p.is_absolute() else base / p for n, p in images.items()})
    return scenes, [scene_name(s) for s in scenes]


def write_mosaics(out: Path, finished: list) -> list[Path]:
    """One ``mosaic.<kind>.vrt`` per output raster kind (prob, mask, value heads) over the finished scenes."""
    from eoseg.geo.vrt import build_vrt

    kinds: dict[str, list[Path]] = {}
    for report in finished:
        for path in report.outputs:
            if path.suffix == ".tif" and path.name.startswith(f"{report.name}."):
                kinds.setdefault(path.name[len(report.name) + 1 : -len(".tif")], []).append(path)
    return [build_vrt(paths, out / f"mosaic.{kind}.vrt") for kind, paths in kinds.items()]


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
