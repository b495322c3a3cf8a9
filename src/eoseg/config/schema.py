"""The typed experiment schema: one YAML file describes data, model, task, loss, optimiser and
schedule, training, prediction and post-processing.

Every section rejects unknown keys, so a typo is an error that names the key path (see
:mod:`eoseg.config.loader`). Relative paths are taken relative to the current working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eoseg.geo.products import IGNORE


def _in_range(value: float | list[float], low: float, high: float, what: str) -> float | list[float]:
    """``value`` (one number or one per class) when every number lies in [low, high]."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{what}: give one value or one per class, not an empty list")
    if any(not low <= v <= high for v in values):
        limits = f">= {low:g}" if high == float("inf") else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{what} must be {limits}" + (" (every value of the list)" if len(values) > 1 else ""))
    return value


class Section(BaseModel):
    """Base of every config section: unknown keys are rejected, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------- data


class SceneSpec(Section):
    """One sample of the dataset: named co-registered images and named target sources."""

    id: str
    images: dict[str, Path] = Field(description="image name -> raster path, e.g. {pre: a.tif, post: b.tif}")
    targets: dict[str, Path] = Field(default_factory=dict, description="target name -> vector or raster")
    region: str | None = Field(default=None, description="grouping attribute for folds, e.g. a city")


class BoundarySpec(Section):
    """The ``boundary`` extra channel: a band inside and a band outside each footprint (geo/rasterize.py)."""

    inner: int = Field(default=2, ge=0, description="full width in chip pixels of the band inside each footprint")
    outer: int = Field(default=0, ge=0, description="full width in chip pixels of the band outside each footprint")

    @model_validator(mode="after")
    def _some_width(self) -> BoundarySpec:
        if self.inner + self.outer == 0:
            raise ValueError("inner and outer are both 0, so the boundary channel would be empty; give one > 0")
        return self


class ContactSpec(Section):
    """The ``contact`` extra channel: gaps between buildings closer than ``spacing`` (solaris contact_mask)."""

    spacing: float = Field(default=2.0, gt=0, description="buildings closer than this are in contact")
    unit: Literal["px", "m"] = Field(default="px", description="spacing in chip pixels or in metres")


class TargetSpec(Section):
    """How one named target is made from its source file."""

    kind: Literal["vector", "raster"] = "vector"
    # vector labels
    burn_value: int = Field(default=1, description="class index burnt for every feature")
    burn_attribute: str | None = Field(default=None, description="take the burn value from this attribute")
    class_map: dict[str, int] | None = Field(
        default=None, description="attribute value -> class index (values not listed are skipped)"
    )
    all_touched: bool = False
    extra_channels: list[Literal["boundary", "contact"]] = Field(
        default_factory=list, description="solaris-style extra channels written after the class channel"
    )
    boundary: BoundarySpec = Field(
        default_factory=lambda: BoundarySpec(), description="the boundary channel's band widths"
    )
    contact: ContactSpec = Field(default_factory=lambda: ContactSpec(), description="the contact channel's spacing")
    label_crs: str | None = Field(default=None, description="CRS assumed for a label file that has none")
    # raster labels
    ignore_value: float | None = Field(default=None, description="raster value that means 'no label'")
    resampling: Literal["nearest", "bilinear", "average", "mode"] = "nearest"
    soft: bool = Field(
        default=False,
        description="raster of probabilities in [0, 1] (soft labels, e.g. from eoseg pseudo-label): kept as "
        "probabilities, not binarised; must lie on its scene's image grid",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_boundary_width(cls, data: Any) -> Any:
        """Configs saved before ``boundary``/``contact`` (checkpoints of earlier runs) keep loading.

        The old ``boundary_width: w`` marked building pixels within ``w`` px of an edge and gaps within ``w``
        px of two buildings: read as ``boundary.inner: w`` and ``contact.spacing: 2w`` px (the nearest new rule).
        """
        if isinstance(data, dict) and "boundary_width" in data:
            data = dict(data)
            width = data.pop("boundary_width")  # a bad value fails in BoundarySpec / ContactSpec, with its key
            data.setdefault("boundary", {"inner": width, "outer": 0})
            data.setdefault("contact", {"spacing": 2 * width if isinstance(width, int | float) else width})
        return data

    @model_validator(mode="after")
    def _soft_is_raster(self) -> TargetSpec:
        if self.soft and self.kind != "raster":
            raise ValueError("soft: true needs kind: raster (a raster of probabilities)")
        return self


class ChipSpec(Section):
    """Chip layout: fixed size with overlap, at one or more scales."""

    size: int = Field(default=512, ge=16)
    overlap: int = Field(default=64, ge=0)
    scales: list[float] = Field(default_factory=lambda: [1.0], description="ground-resolution factors")
    empty_share: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="None keeps all chips; else keep chips with labels plus this share of empty ones",
    )
    compress: Literal["deflate", "lzw", "zstd", "none"] = "deflate"

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChipSpec:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self

    @field_validator("scales")
    @classmethod
    def _positive_scales(cls, v: list[float]) -> list[float]:
        if not v or any(s <= 0 for s in v):
            raise ValueError("scales must be a non-empty list of positive numbers, e.g. [0.5, 1, 2]")
        return v


class AugmentSpec(Section):
    """One albumentations transform: its class name and keyword arguments."""

    name: str = Field(description="albumentations class, e.g. HorizontalFlip, ShiftScaleRotate")
    p: float = Field(default=0.5, ge=0.0, le=1.0)
    params: dict[str, Any] = Field(default_factory=dict)


class GeometrySpec(Section):
    """Values tied to the pixel size, rewritten with each geometric augmentation (geopose recipe).

    An augmentation that zooms by ``s`` (the square root of its linear map's determinant: 2 when objects
    come out twice as large) divides the ground sample distance by ``s`` and multiplies lengths measured
    in pixels by ``s``; rotations and flips (``s`` = 1) leave both alone.
    """

    gsd_input: str | None = Field(
        default=None,
        description="the data.inputs channel holding the ground sample distance (metres per pixel, a constant "
        "plane): divided by each augmentation's zoom and kept out of colour transforms",
    )
    pixel_lengths: list[str] = Field(
        default_factory=list,
        description="targets measured in pixels (the geopose flow magnitude): multiplied by each augmentation's zoom",
    )


class SamplerSpec(Section):
    """Weighted sampling of chips by whether their target is empty (UNOSAT recipe)."""

    empty_weight: float = Field(default=0.5, ge=0.0)
    nonempty_weight: float = Field(default=0.5, ge=0.0)
    target: str = "mask"


class CloudsFormat(Section):
    """Kaggle Understanding Clouds layout: ``train.csv`` (Image_Label, EncodedPixels) + ``train_images/``."""

    name: Literal["clouds"]
    size: tuple[int, int] = Field(
        default=(384, 576), description="(height, width) the 1400 x 2100 images and masks are resized to"
    )

    @field_validator("size")
    @classmethod
    def _positive_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 16:
            raise ValueError(f"size {list(v)}: height and width must be at least 16 pixels, e.g. [384, 576]")
        return v


class SpacenetFormat(Section):
    """SpaceNet building folders: ``<AOI>/<RGB-PanSharpen|PS-RGB|...>/*.tif`` + ``geojson*/**/*.geojson``."""

    name: Literal["spacenet"]


class XbdFormat(Section):
    """xBD / xView2: ``<split>/images/*_{pre,post}_disaster.{png,tif}`` + ``<split>/labels/*.json``."""

    name: Literal["xbd"]


class GeoposeFormat(Section):
    """Overhead Geopose layout: ``metadata.csv`` (id, city, gsd) + ``train/<id>_RGB|AGL|VFLOW`` files."""

    name: Literal["geopose"]
    unit: Literal["cm", "m"] = Field(
        default="cm", description="unit of the AGL files (in and out); heights are trained and scored in metres"
    )


class UnosatFormat(Section):
    """UNOSAT: ``<city>/s1a_<tile>_{vv,vh}_<orbit>_<date>.tif`` + one footprint shapefile per city folder."""

    name: Literal["unosat"]


FormatSpec = Annotated[
    CloudsFormat | GeoposeFormat | SpacenetFormat | XbdFormat | UnosatFormat, Field(discriminator="name")
]
"""A competition's published layout that ``data.scenes_file`` is read as (docs/recipes/*.md)."""


class DataSpec(Section):
    """Where scenes come from, how chips are made, and how they are fed to the model."""

    root: Path = Field(default=Path("chips"), description="prepared chip dataset folder")
    scenes: list[SceneSpec] = Field(default_factory=list)
    scenes_file: Path | None = Field(
        default=None, description="CSV with columns id, region, one per image name and one per target name"
    )
    format: FormatSpec | None = Field(
        default=None,
        description="read data.scenes_file as a competition's own layout (clouds: train.csv; geopose: "
        "metadata.csv; spacenet, xbd, unosat: the download folder)",
    )
    bands: dict[str, list[str]] = Field(
        default_factory=dict,
        description="band names per image; default: the image name for one band, else name_1, name_2, ...",
    )
    inputs: list[str] = Field(
        default_factory=list,
        description="model input channels as band expressions, e.g. [vh, vv, '(vh+vv)/2', '10*log10(vv)']",
    )
    nodata: dict[str, float] = Field(default_factory=dict, description="override nodata per image name")
    scale: dict[str, Literal["linear", "db", "amplitude"]] = Field(
        default_factory=dict,
        description="declared value scale per image name (SAR): db and amplitude are turned into linear power "
        "before data.inputs is evaluated; default linear (as is)",
    )
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    classes: list[str] = Field(default_factory=lambda: ["background", "building"])
    chips: ChipSpec = Field(default_factory=ChipSpec)
    folds: int = Field(default=5, ge=1)
    fold_by: Literal["scene", "region"] = "scene"
    fold: int = Field(default=0, ge=0, description="validation fold for training")
    val_scenes: list[str] = Field(
        default_factory=list, description="validate on these scenes (by id) instead of data.fold; the rest trains"
    )
    val_regions: list[str] = Field(
        default_factory=list, description="validate on the scenes of these regions instead of data.fold"
    )
    train_on_val: bool = Field(
        default=False,
        description="train on every chip, the validation chips too (validation then measures fit; warns)",
    )
    augment: list[AugmentSpec] = Field(default_factory=list)
    geometry: GeometrySpec = Field(default_factory=GeometrySpec)
    sampler: SamplerSpec | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _fold_in_range(self) -> DataSpec:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is out of range: data.folds is {self.folds} (use 0..{self.folds - 1})")
        return self

    @model_validator(mode="after")
    def _geometry_names_exist(self) -> DataSpec:
        gsd = self.geometry.gsd_input
        if gsd is not None and self.inputs and gsd not in self.inputs:
            raise ValueError(f"geometry.gsd_input={gsd!r} is not one of data.inputs {self.inputs}; add it there")
        unknown = [t for t in self.geometry.pixel_lengths if t not in self.targets]
        if unknown:
            raise ValueError(f"geometry.pixel_lengths: {unknown} are not data.targets ({sorted(self.targets)})")
        return self


# -------------------------------------------------------------------------------------------- model


class HeadSpec(Section):
    """A named model output."""

    kind: Literal["dense", "image_class", "scalar", "direction"] = "dense"
    channels: int = Field(default=1, ge=1)
    activation: Literal["sigmoid", "softmax", "identity", "relu"] | None = Field(
        default=None, description="applied at inference; default from the task (sigmoid/softmax/identity)"
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target: str | None = Field(default=None, description="target this head learns; default: the head name")


class SiameseSpec(Section):
    """Shared encoder over two co-registered images (pre/post); inputs split into two equal halves."""

    fusion: Literal["concat", "diff"] = "concat"


class ModelSpec(Section):
    """Architecture x encoder, plus extra heads."""

    arch: str = "Unet"
    encoder: str = "resnet34"
    encoder_weights: Path | None = Field(default=None, description="local state dict or safetensors file")
    init_checkpoint: Path | None = Field(default=None, description="eoseg checkpoint to start from")
    arch_params: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for smp")
    heads: dict[str, HeadSpec] = Field(default_factory=lambda: {"mask": HeadSpec()})
    siamese: SiameseSpec | None = None


# ---------------------------------------------------------------------------------------------- task


class TaskSpec(Section):
    """What is learnt: decides targets, default heads, metrics and post-processing."""

    kind: Literal["binary", "multiclass", "multilabel", "change", "regression"] = "binary"
    ignore_index: int = Field(default=IGNORE, description="class-target value that is not counted")
    damage_target: str = Field(default="damage", description="change task: target with ordinal damage classes")


class LossTermSpec(Section):
    """A loss term with a weight and its own parameters."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    weight: float = 1.0


LossSpec = dict[str, dict[str, float | LossTermSpec]]
"""head name -> {loss name: weight or {weight: w, param: value, ...}}"""


# ------------------------------------------------------------------------------- optimiser, schedule


class OptimSpec(Section):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    momentum: float = 0.9
    nesterov: bool = True
    eps: float = 1e-8


class ScheduleSpec(Section):
    name: Literal["none", "onecycle", "cosine", "poly", "plateau", "warm_restarts"] = "none"
    pct_start: float = Field(default=0.3, gt=0.0, lt=1.0)
    power: float = 0.9
    min_lr: float = 0.0
    t_0: int = Field(default=10, description="warm restarts: epochs of the first cycle")
    t_mult: int = 1
    factor: float = 0.5
    patience: int = 5


class MlflowSpec(Section):
    enabled: bool = False
    tracking_uri: str | None = Field(default=None, description="default: $MLFLOW_TRACKING_URI or ./mlruns")
    experiment: str = "eoseg"


class TrainSpec(Section):
    out: Path = Field(default=Path("runs"), description="runs folder; a run writes into out/<name>")
    epochs: int = Field(default=10, ge=1)
    max_steps: int = Field(default=-1, description="stop after this many optimiser steps (-1: no limit)")
    batch_size: int = Field(default=8, ge=1)
    num_workers: int = Field(default=2, ge=0)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | str = "auto"
    num_nodes: int = Field(default=1, ge=1, description="machines of a DDP run (train.devices processes on each)")
    strategy: str = "auto"
    precision: Literal["32", "16-mixed", "bf16-mixed", "32-true"] = "32"
    accumulate: int = Field(default=1, ge=1)
    grad_clip: float | None = None
    seed: int = 42
    deterministic: bool = False
    monitor: str = Field(default="val/iou", description="metric that picks the best checkpoint")
    monitor_mode: Literal["max", "min"] = "max"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    tensorboard: bool = True
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec)


class TuneSpec(Section):
    lr: tuple[float, float] = (1e-5, 1e-1)
    weight_decay: tuple[float, float] = (1e-10, 1e-3)
    epochs: int = Field(default=1, ge=1)


# ---------------------------------------------------------------------------------------- inference


class RaySpec(Section):
    """Many scenes on a Ray cluster: one task per scene, each running the whole scene predictor."""

    enabled: bool = Field(default=False, description="run scenes as Ray tasks (the CLI's --ray sets it)")
    address: str | None = Field(
        default=None, description="None: start a local Ray instance; 'auto' or host:port: join a cluster"
    )
    cpus_per_scene: float = Field(default=1.0, gt=0, description="CPUs each scene task reserves (torch threads)")
    gpus_per_scene: float = Field(default=0.0, ge=0, le=1, description="GPU fraction each scene task reserves")
    retries: int = Field(default=3, ge=0, description="re-runs of a scene whose worker died")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for the cluster's address")


class PredictSpec(Section):
    window: int | None = Field(default=None, ge=16, description="window size; default: the training chip size")
    overlap: int | None = Field(default=None, ge=0, description="window overlap; default: a quarter window")
    batch_size: int | None = Field(default=None, ge=1, description="default: chosen from the device")
    blend: Literal["hann", "cosine", "triangular", "uniform"] = "hann"
    strip: int | None = Field(default=None, ge=1, description="pixels across the window walk visited in one go: "
                              "wider scenes are walked in strips of about this (memory is a strip of tiles; tiles on "
                              "a strip border wait in a temporary file); default 4,096")
    tta: Literal["none", "flips", "d4"] = "none"
    tta_scales: list[Annotated[float, Field(gt=0.0)]] = Field(default_factory=lambda: [1.0])
    merge: Literal["mean", "gmean"] = "mean"
    ensemble_weights: list[Annotated[float, Field(ge=0.0)]] | None = None
    vote: int | None = Field(default=None, ge=1, description="k-of-n voting of binary masks across models")
    prob_dtype: Literal["uint8", "float16"] = "uint8"
    compress: Literal["deflate", "zstd"] = Field(
        default="zstd", description="compression of the output COGs of predict and pseudo-label (eoseg ensemble "
        "keeps its inputs'; level 1, with predictor; the same pixels "
        "either way): zstd (eoseg.geo.cog.DEFAULT_COMPRESS) costs less CPU and is read by GDAL >= 2.3 / QGIS 3; "
        "deflate is read by every TIFF reader")
    polygons: bool = Field(default=False, description="also write <scene>.polygons.gpkg from the final mask "
                           "(class, area_m2, mean_prob; post.simplify applied)")
    allow_dtype: bool = Field(default=False, description="predict scenes of another dtype than the training one "
                              "(a warning; their values must be on the training scale)")
    device: str = "auto"
    workers: int = Field(default=2, ge=0)
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = "auto"
    ray: RaySpec = Field(default_factory=RaySpec)


class GateSpec(Section):
    """Empty a class channel when the image-level classifier is not confident (clouds recipe)."""

    head: str = "image_class"
    threshold: float | list[float] = 0.5

    @field_validator("threshold")
    @classmethod
    def _probability(cls, v: float | list[float]) -> float | list[float]:
        return _in_range(v, 0.0, 1.0, "a probability threshold")


class PostSpec(Section):
    threshold: float | list[float] = Field(default=0.5, description="one value in [0, 1], or one per class")
    min_area: float | list[float] = Field(default=0.0, description="minimum object area in m² (per class)")
    simplify: float = Field(default=0.0, ge=0, description="polygon simplification tolerance in CRS units")
    gate: GateSpec | None = None
    metric: str = Field(default="iou", description="metric that threshold search maximises")

    @field_validator("threshold")
    @classmethod
    def _probability(cls, v: float | list[float]) -> float | list[float]:
        return _in_range(v, 0.0, 1.0, "a probability threshold")

    @field_validator("min_area")
    @classmethod
    def _area(cls, v: float | list[float]) -> float | list[float]:
        return _in_range(v, 0.0, float("inf"), "an area in m²")


# ------------------------------------------------------------------------------------- self-training


class PseudoLabelSpec(Section):
    """How predictions on unlabelled scenes become targets (``eoseg pseudo-label``; Open Cities, clouds).

    ``soft`` keeps the probabilities; ``hard`` maps ``p > high`` to 1, ``p < low`` to 0 and ignores the band
    between (Open Cities ``convert_soft_to_hard``); ``image`` keeps a chip only when every channel is
    confidently empty (max probability below ``empty_below``) or present (above ``present_above``), with its
    soft labels (clouds recipe).
    """

    rule: Literal["soft", "hard", "image"] = "soft"
    low: float = Field(default=0.4, ge=0.0, le=1.0, description="hard rule: p < low -> 0")
    high: float = Field(default=0.6, ge=0.0, le=1.0, description="hard rule: p > high -> 1; between: ignore")
    empty_below: float = Field(default=0.3, ge=0.0, le=1.0, description="image rule: a channel is empty")
    present_above: float = Field(default=0.7, ge=0.0, le=1.0, description="image rule: a channel is present")

    @model_validator(mode="after")
    def _ordered(self) -> PseudoLabelSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.empty_below > self.present_above:
            raise ValueError(f"empty_below ({self.empty_below}) must not exceed present_above ({self.present_above})")
        return self


class MixSpec(Section):
    """Training on labelled chips mixed with a pseudo-labelled chip set (the Open Cities noisy student).

    ``every: k`` adds one pseudo-labelled batch after every ``k`` labelled batches (Open Cities: 5; an
    epoch of fewer than ``k`` labelled batches ends with one);
    ``share: s`` makes a share ``s`` of every batch pseudo-labelled. Each set has its own loss weight; the
    pseudo-labelled batches use ``loss`` (default: the labelled ``loss``), e.g. ``{mask: {kl: 1.0}}``.
    """

    root: Path | None = Field(
        default=None, description="prepared pseudo-labelled chips (chips/ of eoseg pseudo-label; self-train sets it)"
    )
    every: int | None = Field(default=None, ge=1, le=1000, description="one pseudo batch every k labelled batches")
    share: float | None = Field(default=None, gt=0.0, lt=1.0, description="share of each batch that is pseudo")
    weight: float = Field(default=1.0, gt=0.0, le=100.0, description="loss weight of pseudo-labelled batches")
    labelled_weight: float = Field(default=1.0, gt=0.0, le=100.0, description="loss weight of labelled batches")
    loss: dict[str, dict[str, float | LossTermSpec]] | None = Field(
        default=None, description="loss terms on pseudo-labelled batches; default: the labelled loss"
    )

    @model_validator(mode="after")
    def _one_ratio(self) -> MixSpec:
        if self.every is not None and self.share is not None:
            raise ValueError("give either every (one pseudo batch every k batches) or share (per batch), not both")
        if self.every is None and self.share is None:
            self.every = 5
        return self


def pseudo_per_batch(share: float, batch_size: int) -> int:
    """Pseudo-labelled samples per batch for ``selftrain.mix.share``; ValueError unless it leaves one of each."""
    count = round(share * batch_size)
    if not 1 <= count < batch_size:
        raise ValueError(
            f"selftrain.mix.share={share:g}: with train.batch_size={batch_size} that is {count} pseudo-labelled "
            f"sample(s) per batch; it must leave at least one of each kind (1..{batch_size - 1}); change the share "
            "or the batch size, or use selftrain.mix.every"
        )
    return count


class NegativesSpec(Section):
    """Negative mining (Open Cities ``mine_empty``): chips the model calls empty, or confident false positives.

    ``eoseg mine-negatives`` lists chips of unlabelled sets whose image-level head and maximum pixel
    probability are both below ``empty_below``, and chips of labelled sets without any object where the
    maximum pixel probability exceeds ``false_positive_above``. Training adds the chips of ``manifest``
    with an implicit zero mask, at most ``share`` of the training chips (the most confident first).
    """

    manifest: Path | None = Field(default=None, description="negatives.parquet of eoseg mine-negatives")
    empty_below: float = Field(default=0.2, ge=0.0, le=1.0)
    false_positive_above: float = Field(default=0.5, ge=0.0, le=1.0)
    share: float = Field(default=0.1, gt=0.0, le=0.5, description="cap: negatives' share of the training chips")


class SelfTrainSpec(Section):
    """Self-training: pseudo-label selection (``pseudo``), labelled / pseudo-labelled mixing (``mix``) and
    negative mining (``negatives``)."""

    pseudo: PseudoLabelSpec = Field(default_factory=PseudoLabelSpec)
    mix: MixSpec | None = None
    negatives: NegativesSpec = Field(default_factory=NegativesSpec)
    student_epochs: int | None = Field(
        default=None, ge=1, le=10000,
        description="eoseg self-train: train.epochs of each student round (default: train.epochs); a student that "
                    "starts from its teacher (--from-teacher) needs fewer epochs than the teacher",
    )
    student_augment: list[AugmentSpec] | None = Field(
        default=None,
        description="eoseg self-train: data.augment of each student round (default: data.augment); the noisy "
                    "student of Open Cities trains with stronger (colour) augmentation than its teacher",
    )
    student_lr: float | None = Field(
        default=None, gt=0.0, le=10.0,
        description="eoseg self-train: optim.lr of each student round (default: optim.lr); a student that starts from "
                    "its teacher (--from-teacher) fine-tunes: a one-cycle schedule that warms up to the teacher's rate "
                    "again undoes much of what the teacher learnt",
    )
    teachers: int = Field(
        default=1, ge=1, le=20,
        description="eoseg self-train: models trained in round 0 (train.seed, train.seed + 1, ...); round 1's "
                    "pseudo-labels average their predictions (Open Cities averaged several runs' TTA probabilities); "
                    "the first one stands for round 0 (its checkpoint starts the students with --from-teacher)",
    )
    checkpoint: Literal["best", "last"] = Field(
        default="best",
        description="eoseg self-train: the checkpoint that stands for a round (pseudo-labels the next round, starts "
                    "its student with --from-teacher, is listed in rounds.json): best by train.monitor on the "
                    "labelled validation chips, or the last one (the end of the schedule; under a domain shift the "
                    "labelled validation chips say little about the unlabelled domain)",
    )


# ------------------------------------------------------------------------------------------- root


class ExperimentConfig(Section):
    """One experiment: everything a run needs, saved beside its outputs."""

    name: str = "experiment"
    description: str = ""
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    task: TaskSpec = Field(default_factory=TaskSpec)
    loss: LossSpec = Field(default_factory=lambda: {"mask": {"bce": 1.0, "dice": 1.0}})
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)
    predict: PredictSpec = Field(default_factory=PredictSpec)
    post: PostSpec = Field(default_factory=PostSpec)
    selftrain: SelfTrainSpec = Field(default_factory=SelfTrainSpec)

    @field_validator("name")
    @classmethod
    def _name_inside_out(cls, v: str) -> str:
        parts = Path(v).parts
        if not v.strip() or Path(v).is_absolute() or ".." in parts or "\\" in v:
            raise ValueError(f"{v!r} is not a run name inside train.out: use a plain name such as "
                             f"'buildings-b1' (no absolute path, no '..'); set train.out for another folder")
        return v

    @model_validator(mode="after")
    def _loss_heads_exist(self) -> ExperimentConfig:
        unknown = sorted(set(self.loss) - set(self.model.heads))
        if unknown:
            raise ValueError(
                f"loss names head(s) {unknown} that model.heads does not define (heads: {sorted(self.model.heads)})"
            )
        mix = self.selftrain.mix
        unknown = sorted(set(mix.loss or {}) - set(self.model.heads)) if mix is not None else []
        if unknown:
            raise ValueError(f"selftrain.mix.loss names head(s) {unknown} that model.heads does not define "
                             f"(heads: {sorted(self.model.heads)})")
        if mix is not None and mix.share is not None:  # refused with the config, before any run folder
            pseudo_per_batch(mix.share, self.train.batch_size)
        return self
