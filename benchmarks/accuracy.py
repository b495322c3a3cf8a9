"""Benchmark held-out accuracy: the ``demo`` preset through eoseg against a plain smp + Lightning script.

Generates a synthetic town (``eoseg.demo.town``; the last scene is held out) and, for each seed, trains:

- eoseg: the shipped ``demo`` preset (Unet-resnet18, 128 px chips, flips + rot90 augmentation, BCE + Dice,
  AdamW + one-cycle) through ``prepare`` and ``train`` (one training scene validates, as the demo does),
  then predicts the held-out scene with ``predict_scene`` without TTA and with the preset's flips TTA;
- baseline: the script a user would write with segmentation-models-pytorch and Lightning alone (below):
  the same model, loss, optimiser, schedule, chip size, batch size and number of optimiser steps, on the
  same training scenes, random 128 px crops augmented by a plain ``albumentations.Compose`` with the same
  flips and rot90, the whole held-out scene in one forward pass, TTA = the mean over the same four flips.

Both are scored by ``eoseg.metrics.evaluate`` on their mask rasters: pixel IoU of the building class and
SpaceNet object F1 (the truth clipped to the tile). The table gives each score without and with TTA, per
seed and as the mean, and the TTA gain (with - without); the ratio eoseg / baseline is on the TTA scores.
Done (issue 13) when TTA does not lower eoseg's held-out score.

Usage: uv run python benchmarks/accuracy.py [--seeds 0 1] [--epochs N] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import albumentations as A
import geopandas as gpd
import lightning as L
import numpy as np
import rasterio
import segmentation_models_pytorch as smp
import torch
from rasterio import features
from torch.utils.data import DataLoader, Dataset

from eoseg.config.loader import save_config
from eoseg.data.datamodule import ChipDataModule
from eoseg.data.prepare import prepare
from eoseg.demo.run import FULL, QUICK, demo_config
from eoseg.demo.town import make_town
from eoseg.inference.predictor import predict_scene
from eoseg.metrics.evaluate import evaluate
from eoseg.models.checkpoint import load_bundle
from eoseg.training.train import train

# ----------------------------------------------------------------------------------------------------------
# The baseline: a plain smp + Lightning training script (what eoseg is compared with).


def read_scene(image: Path, footprints: Path) -> tuple[np.ndarray, np.ndarray, rasterio.profiles.Profile]:
    """RGB ``(3, H, W)`` float32 and the footprints burnt as a 0/1 ``(H, W)`` mask on the image grid."""
    with rasterio.open(image) as src:
        rgb, profile = src.read().astype(np.float32), src.profile
        shapes = gpd.read_file(footprints).to_crs(src.crs).geometry
        mask = features.rasterize(((g, 1) for g in shapes), out_shape=(src.height, src.width),
                                  transform=src.transform, dtype="uint8")
    return rgb, mask, profile


class RandomCrops(Dataset):
    """``length`` random ``size`` px crops of the training scenes, flipped / rotated by albumentations."""

    def __init__(self, scenes: list[tuple[np.ndarray, np.ndarray]], size: int, length: int, seed: int,
                 mean: np.ndarray, std: np.ndarray) -> None:
        self.scenes, self.size, self.length, self.seed = scenes, size, length, seed
        self.mean, self.std = mean[:, None, None], std[:, None, None]
        self.augment = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))  # where the crop is; the flips are albumentations' own
        rgb, mask = self.scenes[rng.integers(len(self.scenes))]
        r, c = (int(rng.integers(0, n - self.size + 1)) for n in mask.shape)
        image = ((rgb[:, r:r + self.size, c:c + self.size] - self.mean) / self.std).transpose(1, 2, 0)
        out = self.augment(image=np.ascontiguousarray(image), mask=mask[r:r + self.size, c:c + self.size])
        return (torch.from_numpy(out["image"].transpose(2, 0, 1).copy()),
                torch.from_numpy(out["mask"][None].astype(np.float32)))


class PlainModule(L.LightningModule):
    def __init__(self, decoder_channels: list[int], lr: float, weight_decay: float, steps: int) -> None:
        super().__init__()
        self.model = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1,
                              decoder_channels=decoder_channels)
        self.bce, self.dice = torch.nn.BCEWithLogitsLoss(), smp.losses.DiceLoss("binary")
        self.lr, self.weight_decay, self.steps = lr, weight_decay, steps

    def training_step(self, batch, batch_idx):
        image, mask = batch
        logits = self.model(image)
        return self.bce(logits, mask) + self.dice(logits, mask)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, total_steps=self.steps,
                                                       pct_start=0.2)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def baseline(train_scenes, held_out, out: Path, config, steps: int, seed: int) -> dict[str, Path]:
    """Train the plain script for ``steps`` steps; write the held-out masks without and with flips TTA."""
    L.seed_everything(seed, workers=True, verbose=False)
    scenes = [read_scene(s.image, s.footprints)[:2] for s in train_scenes]
    pixels = np.concatenate([rgb.reshape(3, -1) for rgb, _ in scenes], axis=1)
    mean, std = pixels.mean(axis=1), pixels.std(axis=1)
    spec = config.train
    crops = RandomCrops(scenes, config.data.chips.size, steps * spec.batch_size, seed, mean, std)
    module = PlainModule(list(config.model.arch_params["decoder_channels"]), config.optim.lr,
                         config.optim.weight_decay, steps)
    trainer = L.Trainer(max_steps=steps, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(crops, batch_size=spec.batch_size, shuffle=True, drop_last=True))
    rgb, _, profile = read_scene(held_out.image, held_out.footprints)
    x = torch.from_numpy((rgb - mean[:, None, None]) / std[:, None, None]).float()[None].to(module.device)
    model = module.model.eval()
    flips = [(), (-1,), (-2,), (-2, -1)]
    with torch.no_grad():
        probs = [torch.sigmoid(model(x.flip(f) if f else x)) for f in flips]
        probs = [p.flip(f) if f else p for p, f in zip(probs, flips, strict=True)]
    written = {}
    for name, prob in (("none", probs[0]), ("flips", torch.stack(probs).mean(0))):
        path = out / f"baseline-{name}.mask.tif"
        with rasterio.open(path, "w", **{**profile, "count": 1, "dtype": "uint8", "nodata": 255}) as dst:
            dst.write((prob[0, 0] >= 0.5).cpu().numpy().astype(np.uint8), 1)
        written[name] = path
    return written


# ----------------------------------------------------------------------------------------------------------


def eoseg_run(town, folder: Path, size, seed: int, epochs: int | None) -> tuple[dict[str, Path], int, list, object]:
    """The demo preset through prepare and train; held-out masks without and with the preset's TTA."""
    settings = [f"train.seed={seed}", f"name=demo-{seed}", *([f"train.epochs={epochs}"] if epochs else [])]
    config = demo_config(town, folder, size, settings)
    save_config(config, folder / f"config-{seed}.yaml")
    if not (folder / "chips" / "manifest.parquet").is_file():
        prepare(config, overwrite=True, progress=False)
    trained = train(config, progress=False, report=False)
    bundle = load_bundle(trained.last_checkpoint)
    held_out = next(s for s in town if s.split == "holdout")
    written = {}
    for tta in ("none", config.predict.tta):
        spec = config.predict.model_copy(update={"tta": tta})
        outputs = predict_scene([bundle], {"image": held_out.image}, folder / f"pred-{seed}-{tta}", spec, config.post,
                                name=held_out.id, progress=False)
        written[tta] = outputs.mask
    used = set(ChipDataModule(config).train_chips["scene"])
    return written, trained.steps, [s for s in town if s.id in used], config


def scores(mask: Path, truth: Path) -> tuple[float, float]:
    """Pixel IoU of the building class and SpaceNet object F1 of a held-out mask raster."""
    result = evaluate([mask], [truth], classes=["background", "building"], objects=True)
    return result["pixel"]["per_class"]["building"]["iou"], result["objects"]["overall"]["f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None,
                        help="eoseg epochs (default: the demo's; the baseline gets the same number of steps)")
    parser.add_argument("--quick", action="store_true", help="the demo's quick town (4 scenes of 384 px)")
    parser.add_argument("--out", type=Path, default=None, help="keep the work folder here (default: temporary)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {
        "eoseg demo": {"none": [], "flips": []}, "plain smp+Lightning": {"none": [], "flips": []}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = (args.out or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        town = make_town(folder / "town", seed=0, n_scenes=size.scenes, size=size.size)
        held_out = next(s for s in town if s.split == "holdout")
        for seed in args.seeds:
            masks, steps, train_scenes, config = eoseg_run(town, folder, size, seed, args.epochs)
            for tta, mask in masks.items():
                rows["eoseg demo"][tta].append(scores(mask, held_out.footprints))
            plain = baseline(train_scenes, held_out, folder, config, steps, seed)
            for tta, mask in plain.items():
                rows["plain smp+Lightning"][tta].append(scores(mask, held_out.footprints))
            print(f"seed {seed}: {steps} steps of batch {config.train.batch_size} on {len(train_scenes)} scenes",
                  flush=True)
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"\nheld-out scene {held_out.id} ({size.size} px), seeds {args.seeds}, {device}")
    print(f"{'method':<22} {'TTA':<6} {'pixel IoU (per seed)':<26} {'mean':>6}   "
          f"{'object F1 (per seed)':<26} {'mean':>6}")
    means: dict[tuple[str, str], tuple[float, float]] = {}
    for method, by_tta in rows.items():
        for tta, values in by_tta.items():
            iou, f1 = [v[0] for v in values], [v[1] for v in values]
            means[method, tta] = (statistics.mean(iou), statistics.mean(f1))
            print(f"{method:<22} {tta:<6} {', '.join(f'{v:.4f}' for v in iou):<26} {means[method, tta][0]:6.4f}   "
                  f"{', '.join(f'{v:.4f}' for v in f1):<26} {means[method, tta][1]:6.4f}")
    for method in rows:
        gain = [means[method, "flips"][k] - means[method, "none"][k] for k in (0, 1)]
        print(f"TTA gain (flips - none), {method}: pixel IoU {gain[0]:+.4f}, object F1 {gain[1]:+.4f}")
    ours, theirs = means["eoseg demo", "flips"], means["plain smp+Lightning", "flips"]
    print(f"ratio eoseg / baseline with TTA: pixel IoU {ours[0] / max(theirs[0], 1e-9):.3f}, "
          f"object F1 {ours[1] / max(theirs[1], 1e-9):.3f}")


if __name__ == "__main__":
    main()
