"""``eoseg evaluate``: pixel and object metrics of predictions against truth, as a table and JSON."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from eoseg.errors import ConfigError, InputError, require_files
from eoseg.geo.products import IGNORE

METRIC_COLUMNS = ("iou", "f1", "precision", "recall", "dice")
stdout = Console()


def _pixel_table(pixel: dict, scenes: dict[str, dict]) -> Table:
    table = Table(title=f"pixel metrics ({pixel['pixels']:,} pixels)")
    table.add_column("class")
    for column in (*METRIC_COLUMNS, "tp", "fp", "fn"):
        table.add_column(column, justify="right")

    def row(name: str, m: dict, style: str | None = None) -> None:
        counts = [f"{m[k]:,}" if k in m else "" for k in ("tp", "fp", "fn")]
        table.add_row(name, *(f"{m[k]:.4f}" for k in METRIC_COLUMNS), *counts, style=style)

    for name, m in pixel["per_class"].items():
        row(name, m)
    row("micro (foreground)", pixel["micro"], "bold")
    row("macro (foreground)", pixel["macro"])
    if len(scenes) > 1:
        for name, m in scenes.items():
            row(f"scene {name}", m, "dim")
    return table


def _object_table(objects: dict) -> Table:
    title = (f"object metrics (SpaceNet rules: IoU > {objects['iou_threshold']:g}, truth < "
             f"{objects['min_truth_area']:g} px and proposals <= {objects['min_pred_area']:g} px dropped; "
             f"area filter {objects['area_filter']})")
    table = Table(title=title)
    table.add_column("image")
    for column in ("tp", "fp", "fn", "precision", "recall", "f1"):
        table.add_column(column, justify="right")

    def row(name: str, m: dict, style: str | None = None) -> None:
        table.add_row(
            name,
            *(str(m[k]) for k in ("tp", "fp", "fn")),
            *(f"{m[k]:.4f}" for k in ("precision", "recall", "f1")),
            style=style,
        )

    for name, m in objects["per_scene"].items():
        row(name, m)
    if len(objects["per_aoi"]) > 1 or len(objects["per_scene"]) > 1:
        for name, m in objects["per_aoi"].items():
            row(f"AOI {name}", m, "dim")
    row("overall", objects["overall"], "bold")
    return table


def evaluate_cmd(
    preds: list[Path] = typer.Argument(
        ..., metavar="PRED...", help="Predicted masks (rasters), polygons, or SpaceNet CSVs."
    ),
    truth: list[Path] = typer.Option(..., "--truth", "-t", help="Truth raster, vector or CSV per prediction (repeat)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the metrics as JSON here."),
    classes: str | None = typer.Option(None, "--classes", help="Class names, comma-separated (0 = background)."),
    ignore_index: int = typer.Option(IGNORE, "--ignore-index", help="Truth value that is not scored."),
    resample: bool = typer.Option(False, "--resample", help="Warp truth rasters on another grid (nearest)."),
    truth_attribute: str | None = typer.Option(
        None, "--truth-attribute", help="Burn truth classes from this attribute."
    ),
    truth_crs: str | None = typer.Option(None, "--truth-crs", help="CRS of truth polygons that have none."),
    objects: bool | None = typer.Option(
        None, "--objects/--no-objects", help="Object metrics (default: when polygons are involved)."
    ),
    iou_threshold: float = typer.Option(0.5, "--iou", help="A matched object needs an IoU strictly above this."),
    min_truth_area: float = typer.Option(
        20.0, "--min-truth-area", help="Drop truth polygons with an area below this many pixels (SpaceNet: 20)."
    ),
    min_pred_area: float = typer.Option(
        20.0, "--min-pred-area", help="Drop proposals with an area of at most this many pixels (SpaceNet: 20)."
    ),
    coords: str = typer.Option(
        "pixel", "--coords", help="SpaceNet CSVs: compare PolygonWKT_Pix (pixel) or PolygonWKT_Geo (geo)."
    ),
    pixel_size: float | None = typer.Option(
        None, "--pixel-size", help="Pixel size in CRS units for polygon files in map coordinates (area rules)."
    ),
    aoi_pattern: str | None = typer.Option(
        None, "--aoi-pattern", help="Regex whose first group is the AOI of an image id (default: AOI_<n>_<City>)."
    ),
    error_maps: Path | None = typer.Option(
        None, "--error-maps", help="Folder for one error-map PNG per raster prediction (TP/FP/FN colours)."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="Score by a competition's rule: clouds (Kaggle Dice, empty = 1; CSVs or mask rasters), "
        "geopose (per-city R² of AGL and flow; a submission folder against a truth folder), "
        "xview2 (a folder of submission PNGs against a folder of target PNGs).",
    ),
    truth_shape: str = typer.Option(
        "1400x2100", "--truth-shape", help="clouds: HEIGHTxWIDTH of the truth CSV's masks (train.csv: 1400x2100)."
    ),
    unit: str = typer.Option("cm", "--unit", help="geopose: unit of the AGL files, cm or m (scored in metres)."),
) -> None:
    """Score predictions against truth: IoU, F1, precision, recall, Dice per class; building F1.

    Example: eoseg evaluate out/atlanta.mask.tif --truth atlanta_buildings.geojson --out metrics.json --error-maps out
    """
    kind = "folder" if fmt in ("geopose", "xview2") else "file"
    require_files(preds, f"prediction {kind}", "argument PRED")
    require_files(truth, f"truth {kind}", "--truth")
    if fmt is not None:
        _competition(fmt, preds, truth, out, truth_shape, unit)
        return
    from eoseg.formats.spacenet import AOI_PATTERN
    from eoseg.metrics.evaluate import evaluate
    from eoseg.metrics.objects import SpaceNetRules

    if coords not in ("pixel", "geo"):
        raise ConfigError(f"--coords {coords!r}: choose pixel or geo")
    result = evaluate(
        preds,
        truth,
        out=out,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        ignore_index=ignore_index,
        resample=resample,
        truth_attribute=truth_attribute,
        label_crs=truth_crs,
        objects=objects,
        rules=SpaceNetRules(iou_threshold, min_truth_area, min_pred_area),
        coords=coords,
        pixel_size=pixel_size,
        aoi_pattern=aoi_pattern or AOI_PATTERN,
    )
    if "pixel" in result:
        stdout.print(_pixel_table(result["pixel"], result["pixel_scenes"]))
    if "objects" in result:
        stdout.print(_object_table(result["objects"]))
        outside = result["objects"].get("truth_outside_extent")
        if outside and (outside["left_out"] or outside["cut"]):
            stdout.print(f"truth clipped to the prediction's valid extent: {outside['left_out']} feature(s) outside it "
                         f"left out, {outside['cut']} cut at its edge scored by their part inside", highlight=False,
                         soft_wrap=True)
    if out is not None:
        stdout.print(f"metrics written to {out}", highlight=False)
    if error_maps is not None:
        for path in write_error_maps(preds, truth, error_maps, resample, truth_attribute, truth_crs):
            stdout.print(f"error map written to {path}", highlight=False)


COMPETITIONS = ("clouds", "geopose", "xview2")


def _competition(
    fmt: str, preds: list[Path], truths: list[Path], out: Path | None, truth_shape: str, unit: str
) -> None:
    """Score with a competition's official rule and print / write it."""
    import json

    from eoseg.geo.atomic import write_text_atomic
    from eoseg.geo.products import check_writable

    if fmt not in COMPETITIONS:
        raise ConfigError(f"--format {fmt}: unknown format; use one of {', '.join(COMPETITIONS)}")
    if out is not None:
        check_writable(out)
    if fmt == "xview2":
        result = _xview2(preds, truths)
    else:
        result = _clouds(preds, truths, truth_shape) if fmt == "clouds" else _geopose(preds, truths, unit)
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=2))
        stdout.print(f"metrics written to {out}", highlight=False)


def _geopose(preds: list[Path], truths: list[Path], unit: str) -> dict:
    from eoseg.metrics.geopose import score_geopose

    if unit not in ("cm", "m"):
        raise ConfigError(f"--unit {unit!r}: the AGL files are in cm (as published) or m")
    if len(preds) != 1 or len(truths) != 1:
        raise InputError("evaluate --format geopose: give one submission folder and one truth folder (--truth)")
    result = score_geopose(preds[0], truths[0], unit)  # type: ignore[arg-type]
    table = Table(title=f"Overhead Geopose R² ({result['scored']} of {result['tiles']} tile(s) predicted)")
    for column in ("city", "R² AGL", "R² VFLOW", "score"):
        table.add_column(column, justify="right")
    for city, m in result["cities"].items():
        table.add_row(city, f"{m['r2_agl']:.4f}", f"{m['r2_vflow']:.4f}", f"{m['score']:.4f}")
    table.add_row("final (mean of cities)", "", "", f"{result['score']:.4f}", style="bold")
    stdout.print(table)
    return result


def _clouds(preds: list[Path], truths: list[Path], truth_shape: str) -> dict:
    from eoseg.metrics.clouds import score_clouds_csv, score_clouds_rasters

    if all(p.suffix.lower() == ".csv" for p in (*preds, *truths)):
        if len(preds) != 1 or len(truths) != 1:
            raise InputError("evaluate --format clouds: give one submission CSV and one truth CSV (--truth)")
        result = score_clouds_csv(preds[0], truths[0], truth_shape=_shape(truth_shape))
    else:
        result = score_clouds_rasters(preds, truths)
    table = Table(title=f"Kaggle clouds Dice (empty = 1) over {result['images']} image(s)")
    table.add_column("class")
    table.add_column("dice", justify="right")
    for label, value in result["per_class"].items():
        table.add_row(label, f"{value:.4f}")
    table.add_row("mean", f"{result['dice']:.4f}", style="bold")
    stdout.print(table)
    return result


def _xview2(preds: list[Path], truths: list[Path]) -> dict:
    from eoseg.metrics.xview2 import score_xview2_folders

    if len(preds) != 1 or len(truths) != 1:
        raise InputError("evaluate --format xview2: give one folder of prediction PNGs and one of targets (--truth)")
    result = score_xview2_folders(preds[0], truths[0])
    table = Table(title=f"xView2 score over {result['images']} image(s): 0.3 x localisation F1 + 0.7 x damage F1")
    table.add_column("part")
    table.add_column("f1", justify="right")
    table.add_row("localisation", f"{result['localization_f1']:.4f}")
    for name, value in result["per_class"].items():
        table.add_row(f"damage {name}", f"{value:.4f}")
    table.add_row("damage (harmonic mean)", f"{result['damage_f1']:.4f}")
    table.add_row("score", f"{result['score']:.4f}", style="bold")
    stdout.print(table)
    return result


def _shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ConfigError(f"--truth-shape {text!r}: expected HEIGHTxWIDTH, e.g. 1400x2100") from exc
    return height, width


def write_error_maps(
    preds: list[Path], truths: list[Path], folder: Path, resample: bool, attribute: str | None, crs: str | None
) -> list[Path]:
    """One ``<prediction>.errors.png`` per raster prediction, with its truth on the prediction grid."""
    from eoseg.metrics.truth import is_vector, truth_on_grid
    from eoseg.report.quicklook import error_map_png

    written = []
    for pred, truth in zip(preds, truths, strict=True):
        if is_vector(pred) or pred.suffix.lower() == ".csv":
            continue
        labels = truth_on_grid(truth, pred, attribute=attribute, resample=resample, label_crs=crs)
        name = pred.name.removesuffix(".tif").removesuffix(".mask")
        written.append(error_map_png(pred, labels, folder / f"{name}.errors.png"))
    return written


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
