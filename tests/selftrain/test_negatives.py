"""Negative mining: empty chips of unlabelled sets, confident false positives of labelled ones, the cap."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inference.inference_helpers import make_bundle  # noqa: E402
from training.chipdata import tiny_config, write_chips  # noqa: E402

from eoseg.config.schema import HeadSpec, NegativesSpec  # noqa: E402
from eoseg.data.datamodule import ChipDataModule  # noqa: E402
from eoseg.data.dataset import read_prepared_stats  # noqa: E402
from eoseg.errors import InputError  # noqa: E402
from eoseg.selftrain.negatives import mine_negatives, why_none_kept  # noqa: E402
from eoseg.tasks.kinds import build_task_kind  # noqa: E402


class Constant(nn.Module):
    """Logit ``pixel`` everywhere and ``image`` for the image-level head."""

    def __init__(self, pixel: float, image: float) -> None:
        super().__init__()
        self.pixel, self.image = pixel, image

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = x.shape
        return {"mask": torch.full((b, 1, h, w), self.pixel), "image_class": torch.full((b, 1), self.image)}


def bundle(root: Path, pixel: float, image: float):
    heads = {"mask": HeadSpec(channels=1), "image_class": HeadSpec(kind="image_class", channels=1)}
    return make_bundle(Constant(pixel, image), heads=heads, chip=32, stats=read_prepared_stats(root))


@pytest.fixture
def labelled(tmp_path):
    return write_chips(tmp_path / "labelled", "binary")  # 3 scenes x 4 chips, the last of each scene empty


def test_confident_false_positives_on_empty_labelled_chips(tmp_path, labelled) -> None:
    result = mine_negatives([bundle(labelled, 5.0, 0.0)], [labelled], [], tmp_path / "neg.parquet", NegativesSpec())
    found = pd.read_parquet(result.path)
    assert result.false_positive == 3 and result.empty == 0 and result.chips == 12
    assert sorted(found.chip_id) == ["scene0-s1-r96-c0", "scene1-s1-r96-c0", "scene2-s1-r96-c0"]
    assert found.max_p.tolist() == pytest.approx([1 / (1 + np.exp(-5))] * 3)
    assert not [c for c in found.columns if c.startswith(("target:", "frac:"))]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in found["image:image"])


@pytest.mark.parametrize(("image", "expected"), [(-5.0, 12), (0.0, 0)])
def test_empty_needs_both_the_image_head_and_the_pixels(tmp_path, labelled, image, expected) -> None:
    # pixels say empty (sigmoid(-5) < 0.2); the image head agrees only at -5 (sigmoid(0) = 0.5)
    result = mine_negatives([bundle(labelled, -5.0, image)], [], [labelled], tmp_path / "neg.parquet",
                            NegativesSpec())
    assert result.empty == expected


def test_training_adds_capped_negatives_with_a_zero_mask(tmp_path, labelled) -> None:
    unlabelled = write_chips(tmp_path / "unlabelled", "binary", seed=5)
    negatives = mine_negatives([bundle(labelled, -5.0, -5.0)], [], [unlabelled], tmp_path / "neg.parquet",
                               NegativesSpec())
    config = tiny_config(labelled, "binary", tmp_path / "runs", {
        "selftrain.negatives": {"manifest": str(negatives.path), "share": 0.2}})
    kind = build_task_kind(config)
    module = ChipDataModule(config, kind.head_targets)
    module.setup("fit")
    chips = module.train_set.chips
    assert len(chips) == 8 + 2 and chips.negative.sum() == 2  # 20 % of 10 (8 training chips of folds 1, 2)
    item = module.train_set[len(chips) - 1]
    assert item["targets"]["mask"].shape == (1, 32, 32) and float(item["targets"]["mask"].abs().sum()) == 0.0


def test_negatives_of_other_images_are_refused(tmp_path, labelled) -> None:
    pd.DataFrame({"chip_id": ["x"], "image:pre": ["/a.tif"], "score": [1.0]}).to_parquet(tmp_path / "n.parquet")
    overrides = {"selftrain.negatives.manifest": str(tmp_path / "n.parquet")}
    config = tiny_config(labelled, "binary", tmp_path / "runs", overrides)
    with pytest.raises(InputError, match=r"negatives have images \['image:pre'\] but the training chips have "
                                         r"\['image:image'\]"):
        ChipDataModule(config, build_task_kind(config).head_targets)


def test_mine_negatives_says_why_it_kept_no_chip(tmp_path, labelled) -> None:
    # the README's demo example found "0 negatives of 49 chips" and said nothing more: every demo chip holds
    # buildings, so the user could not tell a threshold from an input without negatives

    model = bundle(labelled, -5.0, 5.0)  # pixels say empty, the image head says "something": no chip qualifies
    spec = NegativesSpec()
    result = mine_negatives([model], [labelled], [labelled], tmp_path / "neg.parquet", spec)
    assert result.negatives == 0 and result.chips == 24
    assert why_none_kept(model, [labelled], [labelled], spec) == (
        "no unlabelled chip (of 12) has its maximum pixel probability and image score both below "
        "selftrain.negatives.empty_below=0.2; "
        "the model stays below selftrain.negatives.false_positive_above=0.5 on all 3 labelled chips without an "
        "object")
    full = tmp_path / "full"  # a labelled set whose chips all hold an object (as the demo's 128-px chips)
    full.mkdir()
    for item in labelled.iterdir():
        (full / item.name).symlink_to(item)
    (full / "manifest.parquet").unlink()
    manifest = pd.read_parquet(labelled / "manifest.parquet")
    manifest[~manifest.chip_id.str.endswith("r96-c0")].to_parquet(full / "manifest.parquet", index=False)
    assert why_none_kept(model, [full], [], spec) == (
        "none of the 9 labelled chips is without an object (prepare smaller chips, data.chips.size, to get some)")
