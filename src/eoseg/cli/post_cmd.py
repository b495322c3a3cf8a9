"""``eoseg vectorize``, ``eoseg ensemble`` and ``eoseg thresholds``: post-processing of predictions."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from eoseg.errors import ConfigError, require_files
from eoseg.progress import console


def _floats(text: str | None, option: str, low: float = -math.inf, high: float = math.inf) -> list[float] | None:
    """Comma-separated numbers of an option, each within [low, high]."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of numbers, e.g. 0.3,0.5") from exc
    bad = [v for v in values if not low <= v <= high]
    if bad:
        limits = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ConfigError(f"{option}: {bad[0]:g} is out of range; every value must be {limits}")
    return values


def vectorize_cmd(
    masks: list[Path] = typer.Argument(
        ..., metavar="MASK...", help="Class mask raster(s) (e.g. scene.mask.tif); several for .csv."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output file: .gpkg, .parquet, .geojson, .shp, .fgb, or .csv (SpaceNet submission)."
    ),
    prob: list[Path] | None = typer.Option(
        None, "--prob", help="Probability raster per mask (repeat): adds mean_prob (the CSV's Confidence)."
    ),
    simplify: float = typer.Option(0.0, "--simplify", help="Simplification tolerance in CRS units (0: none)."),
    min_area: str = typer.Option("0", "--min-area", help="Minimum polygon area in m² (one value or one per class)."),
    band: int = typer.Option(1, "--band", help="Band of the mask to trace."),
) -> None:
    """Polygons of a mask in the raster's CRS, holes kept, with class, area_m2 and mean_prob.

    Example: eoseg vectorize out/atlanta.mask.tif --prob out/atlanta.prob.tif --min-area 10 --out atlanta.gpkg

    Example: eoseg vectorize pred/*.mask.tif --out submission.csv   (SpaceNet CSV, pixel WKT, one row per building)
    """
    from eoseg.post.vectorize import spacenet_submission, vectorize

    require_files(masks, "raster file", "argument MASK")
    require_files(prob or [], "raster file", "--prob")
    areas = _floats(min_area, "--min-area", low=0.0)
    if out.suffix.lower() == ".csv":
        frame = spacenet_submission(masks, out, probs=prob or None, simplify=simplify, min_area=areas)
        images = frame["image_id"].nunique()
        buildings = int((~frame.geometry.is_empty).sum())
        console.print(f"{buildings} building(s) of {images} image(s) written to {out}", highlight=False)
        return
    if len(masks) != 1 or (prob and len(prob) != 1):
        raise ConfigError(f"{out}: one mask (and at most one --prob) per polygon file; several masks need a .csv")
    frame = vectorize(masks[0], out, prob=prob[0] if prob else None, simplify=simplify, min_area=areas, band=band)
    console.print(f"{len(frame)} polygon(s) written to {out}", highlight=False)


def ensemble_cmd(
    preds: list[Path] = typer.Argument(..., metavar="RASTER...", help="Probability or mask rasters on one grid."),
    out: Path = typer.Option(..., "--out", "-o", help="Output raster (Cloud-Optimized GeoTIFF)."),
    mode: str = typer.Option("mean", "--mode", help="mean (probabilities) or vote (k-of-n of binary masks)."),
    min_votes: int | None = typer.Option(None, "--min-votes", help="vote: inputs that must agree (default majority)."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="vote: inputs are probabilities, on above this value, giving the mask predict gives "
        "(softmax: one class band; multilabel: a band per label) (default: masks, on if > 0)."
    ),
    weights: str | None = typer.Option(None, "--weights", help="mean: one weight per input, comma-separated."),
) -> None:
    """Combine rasters of several models or acquisitions: mean of probabilities or k-of-n vote of masks.

    Example: eoseg ensemble a.mask.tif b.mask.tif c.mask.tif --mode vote --min-votes 2 --out city.tif
    """
    from eoseg.post.ensemble import ensemble_rasters
    require_files(preds, "raster file", "argument RASTER")
    if threshold is not None:
        _floats(str(threshold), "--threshold", 0.0, 1.0)
    path = ensemble_rasters(
        preds, out, mode, min_votes=min_votes, threshold=threshold, weights=_floats(weights, "--weights")
    )
    console.print(f"{mode} of {len(preds)} raster(s) written to {path}", highlight=False)


def thresholds_cmd(
    probs: list[Path] = typer.Argument(..., metavar="PROB...", help="Validation probability rasters."),
    truth: list[Path] = typer.Option(..., "--truth", "-t", help="Truth raster or vector per raster (repeat)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Config overlay YAML to write (post.threshold, post.min_area, post.gate)."
    ),
    config: str | None = typer.Option(
        None, "--config", "-c", help="Preset or YAML: its post.metric and main head give --metric and --kind."
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="binary, multiclass or multilabel (default: the prob.tif's mask_kind tag, else binary)."
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="Metric to maximise: iou, f1, dice or mean_dice (default: post.metric, else iou)."
    ),
    candidates: str | None = typer.Option(None, "--thresholds", help="Candidate thresholds (default 0.05..0.95)."),
    min_areas: str = typer.Option(
        "0", "--min-areas", help="Candidate minimum areas, comma-separated: m², or pixels of a raster without a CRS "
        "(clouds: pixels of the 350 x 525 submission mask)."
    ),
    resample: bool = typer.Option(False, "--resample", help="Warp truth rasters on another grid (nearest)."),
    gate: str | None = typer.Option(
        None, "--gate", help="Also search the classifier gate of this image-level head (multilabel), e.g. image_class."
    ),
) -> None:
    """Pick the per-class threshold and minimum area (and gate) that maximise a metric on validation predictions.

    Example: eoseg thresholds val/*.prob.tif -t a.tif -t b.tif --min-areas 0,10,50 --out post.yaml
    """
    from eoseg.geo.products import check_writable
    from eoseg.geo.raster import raster_info
    from eoseg.post.search import DEFAULT_THRESHOLDS, probability_kind, search_thresholds, write_overlay
    require_files(probs, "raster file", "argument PROB")
    require_files(truth, "truth file", "--truth")
    given_by = "--kind"
    if config is not None:
        from eoseg.config.activation import main_head
        from eoseg.config.loader import load_config
        from eoseg.post.postprocess import mask_kind

        experiment = load_config(config)
        metric = metric or experiment.post.metric
        head = main_head(dict(experiment.model.heads))
        if kind is None and head is not None:
            kind, given_by = mask_kind(experiment.model.heads[head], experiment.task), f"--config {config}"
    kind, metric = probability_kind(probs, kind, given_by), metric or "iou"
    check_writable(out, inputs=[*probs, *truth])
    choices = search_thresholds(
        probs,
        truth,
        kind=kind,  # type: ignore[arg-type]
        metric=metric,
        thresholds=_floats(candidates, "--thresholds", 0.0, 1.0) or DEFAULT_THRESHOLDS,
        min_areas=_floats(min_areas, "--min-areas", low=0.0) or [0.0],
        resample=resample,
    )
    gate_spec = gate_scores = None
    if gate is not None:
        if kind != "multilabel":
            raise ConfigError(f"--gate: the classifier gate empties channels of multilabel masks; --kind is {kind}")
        from eoseg.post.search import search_gate

        gate_spec, gate_scores = search_gate(probs, truth, choices, head=gate, resample=resample)
    write_overlay(out, choices, raster_info(probs[0]).count, metric, gate_spec, kind)  # type: ignore[arg-type]
    table = Table(title=f"best {metric} per channel")
    columns = ["channel", "threshold", f"min area {area_unit(raster_info(probs[0]).crs)}", metric, "at 0.5"]
    for column in columns + (["gate", "mean dice gated"] if gate_spec else []):
        table.add_column(column, justify="right")
    for c in choices:
        extra = [f"{gate_spec.threshold[c.channel]:g}", f"{gate_scores[c.channel]:.4f}"] if gate_spec else []
        scores = [f"{c.score:.4f}", f"{c.default_score:.4f}"]
        table.add_row(str(c.channel), f"{c.threshold:g}", f"{c.min_area:g}", *scores, *extra)
    console.print(table)
    console.print(f"config overlay written to {out}", highlight=False)


def area_unit(crs: object) -> str:
    """Unit of ``post.min_area`` on a raster: m² on a map grid, pixels on one without a CRS (clouds, xView2 PNGs)."""
    return "m²" if crs is not None else "px"


def register(app: typer.Typer) -> None:
    app.command("vectorize")(vectorize_cmd)
    app.command("ensemble")(ensemble_cmd)
    app.command("thresholds")(thresholds_cmd)
