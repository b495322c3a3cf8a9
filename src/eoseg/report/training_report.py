"""``report.html`` for a training run: config summary, learning curves, validation samples, confusion.

The page is self-contained: every figure is a PNG made with matplotlib and embedded as base64, the
style sheet is inline, and nothing is fetched, so it opens offline and can be mailed around.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from eoseg.config.activation import main_head
from eoseg.config.loader import config_to_yaml
from eoseg.config.schema import ExperimentConfig
from eoseg.geo.atomic import write_text_atomic
from eoseg.geo.products import IGNORE
from eoseg.post.postprocess import Postprocessor
from eoseg.report.render import (
    IGNORE_RGB,
    class_colours,
    colour_classes,
    figure_png,
    overlay_classes,
    png_data_uri,
)

REPORT_NAME = "report.html"
SAMPLE_COLUMNS = ("image", "image + prediction", "prediction", "image + truth", "truth")
_NOT_CURVES = {"epoch", "step", "global_step", "time", "wall_s"}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
color:#1d2430;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}
.sub{color:#57606a;margin-top:4px}
table.kv{border-collapse:collapse}table.kv td{padding:3px 14px 3px 0;vertical-align:top}
table.kv td:first-child{color:#57606a;white-space:nowrap}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:0.88em}
pre{background:#f6f8fa;padding:12px;overflow:auto;max-height:480px}
figure{margin:0 0 18px 0}figcaption{color:#57606a;font-size:0.9em}
img{max-width:100%;height:auto;image-rendering:auto}
.best{background:#dafbe1;padding:2px 6px;border-radius:4px}
"""


def training_report(
    run_dir: Path,
    history: pd.DataFrame | list[dict[str, Any]],
    samples: list[dict[str, Any]],
    confusion: np.ndarray | None,
    config: ExperimentConfig,
    rounds: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    ``history``: one row per epoch (``epoch`` plus numeric columns such as ``train/loss``, ``val/iou``).
    ``samples``: dicts with ``image`` (H, W, 3) uint8, ``pred`` (H, W) class indices or foreground
    probabilities (a binary head; thresholded by the Postprocessor, as ``eoseg predict`` does),
    ``truth`` (H, W) class indices with 255 = ignore, ``metric`` (float) and ``name`` (str).
    ``confusion``: (K, K) counts, rows = truth, columns = prediction, or None (not a class task).
    ``rounds``: self-training rounds so far (one dict per round: round, pseudo chips, validation score, ...).
    """
    frame = history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    run_dir = Path(run_dir)
    sections = [
        _section("Configuration", _config_html(config, frame)),
        _section("Learning curves", _curves_html(frame, list(config.model.heads))),
        _section(f"Validation samples ({len(samples)})", _samples_html(samples, config)),
    ]
    if rounds:
        sections.insert(1, _section("Self-training rounds", _rounds_html(rounds)))
    if confusion is not None:
        sections.append(_section("Confusion matrix", _confusion_html(np.asarray(confusion), config.data.classes)))
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(config.name)}: training report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(config.name)}: training report</h1>"
        f"<p class=\"sub\">run <code>{html.escape(str(run_dir))}</code> · written {when}</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
    return write_text_atomic(run_dir / REPORT_NAME, page)


# ------------------------------------------------------------------------------------------- sections


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _rounds_html(rounds: list[dict[str, Any]]) -> str:
    """One row per self-training round."""
    columns = list(rounds[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(f'{r.get(c):.4g}' if isinstance(r.get(c), float) else str(r.get(c)))}</td>"
                         for c in columns) + "</tr>"
        for r in rounds
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _config_html(config: ExperimentConfig, history: pd.DataFrame) -> str:
    """Key settings as a table, the best epoch, and the full resolved YAML in a collapsible block."""
    losses = "; ".join(
        f"{head}: " + " + ".join(f"{_weight(term)}·{name}" for name, term in terms.items())
        for head, terms in config.loss.items()
    )
    rows = {
        "description": config.description or "-",
        "task": config.task.kind,
        "classes": ", ".join(config.data.classes),
        "inputs": ", ".join(config.data.inputs) or "all bands",
        "model": f"{config.model.arch} · {config.model.encoder} · heads {', '.join(config.model.heads)}",
        "chips": f"{config.data.chips.size} px, overlap {config.data.chips.overlap}, scales "
        f"{', '.join(f'{s:g}' for s in config.data.chips.scales)}",
        "loss": losses,
        "optimiser": f"{config.optim.name}, lr {config.optim.lr:g}, weight decay {config.optim.weight_decay:g}",
        "schedule": config.schedule.name,
        "training": f"{config.train.epochs} epochs, batch {config.train.batch_size}, "
        f"precision {config.train.precision}, validation fold {config.data.fold} of {config.data.folds}",
    }
    best = _best_epoch(history, config.train.monitor, config.train.monitor_mode)
    if best:
        rows["best"] = f"<span class=\"best\">{html.escape(best)}</span>"
    table = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v if k == 'best' else html.escape(v)}</td></tr>" for k, v in rows.items()
    )
    yaml_text = html.escape(config_to_yaml(config))
    return (f"<table class=\"kv\">{table}</table>"
            f"<details><summary>resolved configuration (YAML)</summary><pre>{yaml_text}</pre></details>")


def _weight(term: Any) -> str:
    return f"{term:g}" if isinstance(term, int | float) else f"{term.weight:g}"


def _best_epoch(history: pd.DataFrame, monitor: str, mode: str) -> str:
    if monitor not in history or history[monitor].dropna().empty:
        return ""
    values = history[monitor].astype(float)
    row = values.idxmax() if mode == "max" else values.idxmin()
    epoch = history.loc[row, "epoch"] if "epoch" in history else row
    return f"best {monitor} = {values[row]:.4f} at epoch {int(epoch)}"


def _curves_html(history: pd.DataFrame, heads: Sequence[str]) -> str:
    """One panel per quantity (loss first), train and validation on the same axes."""
    panels = _curve_panels(history, heads)
    if not panels:
        return "<p>No epochs were recorded.</p>"
    x = history["epoch"].to_numpy() if "epoch" in history else np.arange(len(history))
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig = Figure(figsize=(4.2 * n_cols, 3.0 * n_rows), layout="constrained")
    for i, (quantity, columns) in enumerate(panels.items()):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        for column in columns:
            values = history[column].astype(float).to_numpy()
            shown = np.isfinite(values)
            ax.plot(x[shown], values[shown], marker="o", markersize=3, label=column)
        ax.set_title(quantity)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if quantity == "learning rate":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    alt = "learning curves: " + ", ".join(panels)
    return f"<figure><img alt=\"{html.escape(alt)}\" src=\"{png_data_uri(figure_png(fig))}\"></figure>"


def _curve_panels(history: pd.DataFrame, heads: Sequence[str] = ()) -> dict[str, list[str]]:
    """Group numeric columns by quantity, train and validation together, classes together.

    ``train/loss`` and ``val/loss`` -> ``loss``; ``val/iou`` and ``val/iou/building`` -> ``iou``; loss terms
    of a head (``train/mask/bce``) -> ``loss terms``; ``lr-AdamW`` -> ``learning rate``. Losses come first.
    """
    panels: dict[str, list[str]] = {}
    for column in history.columns:
        if column in _NOT_CURVES or not pd.api.types.is_numeric_dtype(history[column]):
            continue
        if history[column].dropna().empty:
            continue
        name = str(column)
        parts = name.split("/")
        quantity = parts[1] if len(parts) > 1 and parts[0] in ("train", "val", "test") else parts[0]
        if quantity in heads:
            quantity = "loss terms"
        elif quantity.startswith("lr") or "learning_rate" in quantity:
            quantity = "learning rate"
        panels.setdefault(quantity, []).append(name)
    losses = {k: v for k, v in panels.items() if "loss" in k}
    return {**losses, **{k: v for k, v in panels.items() if k not in losses}}


def _samples_html(samples: list[dict[str, Any]], config: ExperimentConfig) -> str:
    """A row of five panels per sample: image, overlays and the two label maps."""
    if not samples:
        return "<p>No validation samples were given.</p>"
    figures = []
    for sample in samples:
        _check_sample(sample)
        png = figure_png(_sample_figure(sample, config))
        caption = f"{sample['name']} · {config.train.monitor.split('/')[-1]} = {float(sample['metric']):.3f}"
        figures.append(f"<figure><img alt=\"sample {html.escape(str(sample['name']))}\" src=\"{png_data_uri(png)}\">"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    legend = ", ".join(
        f"<span style=\"color:rgb{tuple(int(c) for c in colour)}\">■</span> {html.escape(name)}"
        for name, colour in zip(config.data.classes[1:], class_colours(len(config.data.classes))[1:], strict=True)
    )
    return f"<p>columns: {' · '.join(SAMPLE_COLUMNS)}; classes: {legend}</p>" + "".join(figures)


def _check_sample(sample: dict[str, Any]) -> None:
    missing = [k for k in ("image", "pred", "truth", "metric", "name") if k not in sample]
    if missing:
        raise ValueError(f"report sample lacks key(s) {missing}; each needs image, pred, truth, metric, name")
    h, w = np.shape(sample["image"])[:2]
    for key in ("pred", "truth"):
        if np.shape(sample[key]) != (h, w):
            raise ValueError(f"report sample {sample['name']!r}: {key} is {np.shape(sample[key])}, image is {(h, w)}")


def _sample_figure(sample: dict[str, Any], config: ExperimentConfig) -> Figure:
    image = np.asarray(sample["image"], np.uint8)
    pred = np.asarray(sample["pred"])
    truth = np.asarray(sample["truth"])
    n_classes = len(config.data.classes)
    fig = Figure(figsize=(12.5, 2.8), layout="constrained")
    axes = fig.subplots(1, 5)
    if config.task.kind == "regression":  # continuous maps on one colour scale, blended over the image
        truth_values = np.where(truth == IGNORE, np.nan, truth.astype(float))
        lo, hi = np.nanpercentile(truth_values, [2, 98]) if np.isfinite(truth_values).any() else (0.0, 1.0)
        pred_rgb, truth_rgb = _values_rgb(pred.astype(float), lo, hi), _values_rgb(truth_values, lo, hi)
        panels = [image, _blend(image, pred_rgb), pred_rgb, _blend(image, truth_rgb), truth_rgb]
        for ax, panel, title in zip(axes, panels, SAMPLE_COLUMNS, strict=True):
            ax.imshow(panel)
            ax.set_title(title, fontsize=9)
    else:
        if np.issubdtype(truth.dtype, np.floating):  # NaN marks ignored pixels in float targets
            truth = np.where(np.isfinite(truth), truth, IGNORE).astype(np.int64)
        labels = _pred_labels(pred, config)
        panels = [image, overlay_classes(image, labels, n_classes), None,
                  overlay_classes(image, truth, n_classes), colour_classes(truth, n_classes)]
        for ax, panel, title in zip(axes, panels, SAMPLE_COLUMNS, strict=True):
            if panel is None:  # the prediction itself: probabilities when given, else classes
                if np.issubdtype(pred.dtype, np.floating):
                    ax.imshow(pred, cmap="magma", vmin=0.0, vmax=1.0)
                    title = "prediction (probability)"
                else:
                    ax.imshow(colour_classes(pred, n_classes))
            else:
                ax.imshow(panel)
            ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return fig


def _values_rgb(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values mapped through viridis between ``lo`` and ``hi``; missing values grey."""
    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = (colormaps["viridis"](np.nan_to_num(scaled))[..., :3] * 255).astype(np.uint8)
    rgb[~np.isfinite(values)] = IGNORE_RGB
    return rgb


def _blend(image: np.ndarray, rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return ((1 - alpha) * image.astype(np.float32) + alpha * rgb).astype(np.uint8)


def _pred_labels(pred: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """Class indices from a prediction: a foreground probability map goes through the main head's
    :class:`~eoseg.post.postprocess.Postprocessor` (the rule of ``eoseg predict``'s mask)."""
    if not np.issubdtype(pred.dtype, np.floating):
        return pred.astype(np.int64)
    heads = config.model.heads
    name = main_head(heads)
    if name is None:
        raise ValueError("report sample: a probability prediction needs a dense head in model.heads")
    labels = Postprocessor.for_head(config.post, heads[name], config.task).foreground(pred)
    return labels.astype(np.int64)


def _confusion_html(confusion: np.ndarray, classes: Sequence[str]) -> str:
    """Counts and row-normalised shares (recall per true class), classes named when the sizes agree."""
    k = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape != (k, k):
        raise ValueError(f"confusion matrix must be square (K, K); got shape {confusion.shape}")
    names = list(classes) if len(classes) == k else [str(i) for i in range(k)]
    totals = confusion.sum(axis=1, keepdims=True).astype(float)
    shares = np.divide(confusion, totals, out=np.zeros(confusion.shape, float), where=totals > 0)
    size = 1.6 + 0.9 * k
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{shares[i, j]:.2f}\n{int(confusion[i, j]):,}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), names, rotation=30, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(shown, ax=ax, label="share of true class")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    return (f"<figure><img alt=\"confusion matrix\" src=\"{png_data_uri(figure_png(fig))}\">"
            f"<figcaption>rows: true class, columns: predicted; pixel accuracy {accuracy:.4f}</figcaption></figure>")
