"""``eoseg predict``: run one or more checkpoints over whole scenes and write georeferenced rasters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.table import Table

from eoseg.config.loader import apply_overrides, config_to_dict, read_source, save_config, validate_config
from eoseg.config.schema import ExperimentConfig
from eoseg.errors import ConfigError, InputError
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
    items: list[str], sections: tuple[str, ...] = OVERRIDE_SECTIONS, command: str = "predict", scenes: bool = True
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
    if scenes and not args.scenes:
        raise InputError(
            f"eoseg {command}: no scene given; pass a GeoTIFF, or pre=a.tif,post=b.tif for image pairs"
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


def load_models(paths: list[Path]) -> list:
    """One bundle per checkpoint: ``.onnx`` files run on onnxruntime, the others are eoseg checkpoints."""
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="Also write a competition submission: clouds (submission.csv from the JPEGs), "
        "geopose (<id>_AGL.tif + <id>_VFLOW.json per RGB tile).",
    ),
    post_file: Path | None = typer.Option(
        None, "--post", help="Overlay YAML with post: / predict: sections (e.g. from `eoseg thresholds`)."
    ),
) -> None:
    """Predict whole scenes with one or more checkpoints (an ensemble), with blending, TTA and streaming.

    Example: eoseg predict runs/a/best.ckpt runs/b/best.ckpt city.tif --out pred predict.tta=d4
    post.threshold=0.4   (or --post post.yaml, the overlay `eoseg thresholds` writes)
    """
    from eoseg.inference.predictor import predict_scenes

    args = split_items(items)
    bundles = load_models(args.checkpoints)
    config = resolve_config(config_to_dict(bundles[0].config), args.overrides, post_file)
    scenes = [parse_scene(item, bundles[0].image_names) for item in args.scenes]
    if fmt is not None:
        from eoseg.inference.competitions import FORMATS, predict_clouds, predict_geopose

        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt}: unknown format; use one of {', '.join(FORMATS)}")
        images = [next(iter(s.values())) for s in scenes]
        if fmt == "clouds":
            results, submission = predict_clouds(bundles, images, out, config.predict, config.post, not quiet)
            console.print(f"submission written to {submission}", highlight=False)
        else:
            results, files = predict_geopose(bundles, images, out, config.predict, config.post, not quiet)
            console.print(f"{len(files)} submission file(s) written to {out}", highlight=False)
    else:
        results = predict_scenes(bundles, scenes, out, config.predict, config.post, progress=not quiet)
    save_config(config, out / "config.yaml")
    pictures: dict[str, list[Path]] = {r.name: [] for r in results}
    if quicklook:
        from eoseg.post.vectorize import vectorize
        from eoseg.report.quicklook import quicklook_png

        for scene, result in zip(scenes, results, strict=True):
            png = out / f"{result.name}.quicklook.png"
            polygons = vectorize(result.mask) if result.mask is not None else None
            pictures[result.name].append(quicklook_png(next(iter(scene.values())), result.mask, png, polygons))
    table = Table("scene", "windows", "Mpx/s", "outputs", title="eoseg predict", title_justify="left")
    for r in results:
        names = [p.name for p in (*r.paths, *pictures[r.name])]
        table.add_row(r.name, str(r.windows), f"{r.mpx_per_s:.3g}", ", ".join(names))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
