"""Self-training commands: ``pseudo-label`` (soft labels and chips from predictions on unlabelled scenes) and
``mine-negatives`` (chips a model calls empty, or gets confidently wrong)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from eoseg.cli.options import CONFIG_ARG, QUIET_OPTION
from eoseg.cli.predict_cmd import (
    OVERRIDE_KEY,
    load_models,
    parse_scenes,
    require_scene_files,
    resolve_config,
    split_items,
)
from eoseg.config.loader import config_to_dict, save_config
from eoseg.errors import InputError, require_models
from eoseg.progress import console

PSEUDO_SECTIONS = ("predict", "post", "selftrain")


def pseudo_label(
    items: list[str] = typer.Argument(
        ...,
        metavar="CKPT... SCENE... [KEY=VALUE]...",
        help="Checkpoints (.ckpt, several = an ensemble), unlabelled scenes, predict.*/post.*/selftrain.* overrides.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: labels/, chips/, confidence.csv, summary.json."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Pseudo-label unlabelled scenes: predict with TTA/ensemble, select by rule, cut chips for training.

    Example: eoseg pseudo-label runs/a/best.ckpt town1-01.tif town1-02.tif --out pseudo predict.tta=d4
    selftrain.pseudo.rule=hard
    """
    args = split_items(items, PSEUDO_SECTIONS, "pseudo-label")
    require_models(args.checkpoints)  # mistyped paths are answered before the model libraries load
    require_scene_files(args.scenes)
    from eoseg.selftrain.pseudo import pseudo_label as run

    bundles = load_models(args.checkpoints)  # .onnx models too
    config = resolve_config(config_to_dict(bundles[0].config), args.overrides)
    scenes = parse_scenes(args.scenes, bundles[0].image_names)
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


def mine_negatives(
    items: list[str] = typer.Argument(
        ..., metavar="CKPT... [KEY=VALUE]...", help="Checkpoints (several = an ensemble) and selftrain.* overrides."
    ),
    labelled: list[Path] = typer.Option(
        [], "--labelled", help="Prepared chip set with labels: its empty chips the model calls positive."
    ),
    unlabelled: list[Path] = typer.Option(
        [], "--unlabelled", help="Prepared chip set without labels (e.g. pseudo-label's chips/): chips called empty."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="negatives.parquet to write (for selftrain.negatives.manifest)."),
) -> None:
    """Mine negatives: chips the model finds empty (image head and max pixel probability) or false positives.

    Example: eoseg mine-negatives runs/a/best.ckpt --labelled chips --unlabelled pseudo/chips --out negatives.parquet
    selftrain.negatives.empty_below=0.2
    """
    args = split_items(items, ("selftrain", "predict"), "mine-negatives", scenes=False)
    if args.scenes:
        raise InputError(f"eoseg mine-negatives: {args.scenes[0]!r} is not a checkpoint (.ckpt); give chip sets "
                         "with --labelled / --unlabelled")
    require_models(args.checkpoints)
    from eoseg.models.checkpoint import load_bundle
    from eoseg.selftrain.negatives import mine_negatives as run
    from eoseg.selftrain.negatives import why_none_kept

    bundles = [load_bundle(path) for path in args.checkpoints]
    config = resolve_config(config_to_dict(bundles[0].config), args.overrides)
    spec = config.selftrain.negatives
    result = run(bundles, labelled, unlabelled, out, spec, config.predict.device)
    console.print(f"{result.negatives} negatives of {result.chips} chips examined ({result.empty} called empty, "
                  f"{result.false_positive} confident false positives) -> {result.path}", highlight=False)
    if result.negatives:
        console.print(f"train with selftrain.negatives.manifest={result.path}", highlight=False)
    else:
        console.print(f"none kept: {why_none_kept(bundles[0], labelled, unlabelled, spec)}", highlight=False)


def self_train(
    config_source: str = CONFIG_ARG,
    items: list[str] = typer.Argument(
        None, metavar="[SCENE]... [KEY=VALUE]...", help="More unlabelled scenes, and dotted config overrides."
    ),
    unlabelled: list[str] = typer.Option(
        [], "--unlabelled", "-u", help="Unlabelled scene (a.tif, or pre=a.tif,post=b.tif); scenes may follow."
    ),
    rounds: int = typer.Option(1, "--rounds", "-n", min=1, max=100, help="Student rounds after the teacher."),
    from_teacher: bool = typer.Option(False, "--from-teacher", help="Start each student from its teacher's weights."),
    control: bool = typer.Option(
        False, "--control", help="Also train a labelled-only control for the students' steps: did the unlabelled "
                                 "scenes help, or the extra steps?"
    ),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Self-train: teacher on the labelled chips, then N rounds of pseudo-labels -> student; resumable.

    Example: eoseg self-train demo data.root=my-chips train.out=my-runs --unlabelled town1-01.tif town1-02.tif
    --rounds 2 --control
    """
    from eoseg.config.loader import load_config

    overrides = [i for i in items or [] if "=" in i and OVERRIDE_KEY.match(i.partition("=")[0])]
    trailing = [i for i in items or [] if i not in overrides]
    config = load_config(config_source, overrides)  # a config mistake is answered before the model libraries load
    from eoseg.data.dataset import read_prepared_stats
    from eoseg.selftrain.rounds import self_train as run
    from eoseg.selftrain.rounds import selftrain_folder

    image_names = list(read_prepared_stats(config.data.root)["bands"])  # the labelled chips' images
    scenes = [*parse_scenes(unlabelled, image_names, "--unlabelled"), *parse_scenes(trailing, image_names)]
    table_rows = run(config, scenes, rounds, progress=not quiet, from_teacher=from_teacher, control=control)
    monitor, folder = config.train.monitor, selftrain_folder(config).resolve()
    table = Table("round", "teacher", "pseudo chips", monitor, "checkpoint", title=f"eoseg self-train: {folder}",
                  title_justify="left")
    for row in table_rows:
        score, checkpoint = row.get(monitor), Path(row["checkpoint"]).resolve()
        shown = checkpoint.relative_to(folder) if checkpoint.is_relative_to(folder) else checkpoint
        table.add_row(str(row["round"]), row["teacher"], str(row["pseudo_chips"]),
                      "-" if score is None else f"{score:.4f}", str(shown))
    console.print(table)
    if control:
        student, labelled_only = table_rows[-2].get(monitor), table_rows[-1].get(monitor)
        if student is not None and labelled_only is not None:
            console.print(f"round {rounds} - control: {monitor} {student - labelled_only:+.4f} (the control took "
                          f"{table_rows[-1]['steps']} steps on the labelled chips alone, as many as the students "
                          "together; both scored on the labelled validation chips)", highlight=False)
    console.print(f"rounds: {folder / 'rounds.csv'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("pseudo-label")(pseudo_label)
    app.command("self-train")(self_train)
    app.command("mine-negatives")(mine_negatives)
