"""Bad Kaggle clouds inputs: one line naming the file and the row, and nothing written or changed."""

from __future__ import annotations

import pytest

from eoseg.cli.app import main

from ..conftest import folder_hashes
from .data import make_clouds_dataset


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    return make_clouds_dataset(tmp_path_factory.mktemp("kaggle"), n_train=2, n_test=0)


def _prepare_fails(tmp_path, kaggle, csv_text, capsys):
    bad = kaggle / "bad.csv"
    bad.write_text(csv_text)
    chips = tmp_path / "chips"
    chips.mkdir()
    (chips / "keep.txt").write_text("earlier work")
    before, inputs = folder_hashes(chips), folder_hashes(kaggle)
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "clouds", "--scenes", str(bad), "--out", str(chips), "--quiet"])
    assert exc.value.code == 2
    assert folder_hashes(chips) == before and folder_hashes(kaggle) == inputs
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert len(err.strip().splitlines()) == 1
    return err


@pytest.mark.parametrize(
    ("rle", "says"),
    [
        ("1 5 9", "odd number of values"),
        ("0 4", "runs fall outside a 1400x2100 mask"),
        ("2939999 5", "runs fall outside a 1400x2100 mask"),
    ],
)
def test_bad_rle_names_file_row_and_rule(tmp_path, kaggle, capsys, rle, says):
    image = sorted((kaggle / "train_images").glob("*.jpg"))[0].name
    err = _prepare_fails(tmp_path, kaggle, f"Image_Label,EncodedPixels\n{image}_Fish,{rle}\n", capsys)
    assert "bad.csv" in err and f"{image}_Fish" in err and says in err


def test_row_for_a_missing_image_names_it(tmp_path, kaggle, capsys):
    err = _prepare_fails(tmp_path, kaggle, "Image_Label,EncodedPixels\nmissing01.jpg_Sugar,1 4\n", capsys)
    assert "bad.csv" in err and "missing01.jpg" in err and "does not exist" in err and "train_images" in err
