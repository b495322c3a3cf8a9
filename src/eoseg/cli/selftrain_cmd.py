"""``eoseg pseudo-label``: soft labels and a prepared chip set from predictions on unlabelled scenes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from eoseg.cli.predict_cmd import load_models, parse_scene, resolve_config, split_items
from eoseg.config.loader import config_to_dict, save_config
from eoseg.progress import console

PSEUDO_SECTIONS = ("predict", "post", "selftrain")


def pseudo_label(
    items: list[str] = typer.Argument(
        ...,
        metavar="CKPT... SCENE... [KEY=VALUE]...",
        help="Checkpoints (.ckpt, several = an ensemble), unlabelled scenes, predict.*/post.*/selftrain.* overrides.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: labels/, chips/, confidence.csv, summary.json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Pseudo-label unlabelled scenes: predict with TTA/ensemble, select by rule, cut chips for training.

    Example: eoseg pseudo-label runs/a/best.ckpt town1-01.tif town1-02.tif --out pseudo predict.tta=d4
    selftrain.pseudo.rule=hard
    """
    from eoseg.selftrain.pseudo import pseudo_label as run

    args = split_items(items, PSEUDO_SECTIONS, "pseudo-label")
    bundles = load_models(args.checkpoints)  # .onnx models too
    config = resolve_config(config_to_dict(bundles[0].config), args.overrides)
    scenes = [parse_scene(item, bundles[0].image_names) for item in args.scenes]
    result = run(bundles, scenes, out, config, progress=not quiet)
    save_config(config, out / "config.yaml")
    table = Table("scene", "valid px", "kept px", "outside band", "mean confidence",
                  title=f"eoseg pseudo-label (rule {config.selftrain.pseudo.rule})", title_justify="left")
    for row in result.scenes:
        table.add_row(row["scene"], str(row["valid_pixels"]), f"{row['share_kept']:.0%}",
                      f"{row['share_outside_band']:.0%}", f"{row['mean_confidence']:.3f}")
    console.print(table)
    console.print(f"kept {result.kept} of {result.chips} chips -> {result.root} (data root for selftrain.mix.root); "
                  f"per chip: {result.confidence}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("pseudo-label")(pseudo_label)
