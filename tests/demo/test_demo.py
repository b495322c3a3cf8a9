"""``eoseg demo --quick``: the whole pipeline on the synthetic town reaches a real IoU on the held-out scene."""

from __future__ import annotations

import json
import re

import cv2
import geopandas as gpd
import pytest
from typer.testing import CliRunner

from eoseg.cli.app import app, main
from eoseg.demo.run import MARKER, claim_folder, cpu_threads
from eoseg.errors import InputError

QUICK_MIN_IOU = 0.60
"""What the quick demo (small town, short training on a CPU) reaches at least on the held-out scene."""


@pytest.mark.timeout(900)
def test_quick_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    iou = metrics["pixel"]["micro"]["iou"]
    assert iou >= QUICK_MIN_IOU
    assert 0 <= metrics["objects"]["overall"]["f1"] <= 1
    assert set(metrics["timings"]) == {"town", "prepare", "train", "predict", "vectorize", "evaluate"}
    assert f"{iou:.3f}" in result.output and "object F1" in result.output
    scene = metrics["scene"]
    prediction = out / "prediction"
    assert len(gpd.read_file(prediction / f"{scene}.polygons.gpkg")) > 10
    assert cv2.imread(str(prediction / f"{scene}.quicklook.png")).shape == (384, 384, 3)
    assert cv2.imread(str(prediction / f"{scene}.errors.png")) is not None
    report = (out / "runs" / "demo" / "report.html").read_text()
    assert len(re.findall(r"<img ", report)) >= 2  # learning curves and validation samples
    assert re.search(r"training report\s+" + re.escape(str(out / "runs" / "demo" / "report.html")), result.output)


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="folder is not empty and not an eoseg demo folder"):
        claim_folder(tmp_path, {})
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_demo_reuses_its_own_folder_and_keeps_other_files(tmp_path):
    claim_folder(tmp_path, {"seed": 1})
    (tmp_path / "chips").mkdir()
    (tmp_path / "chips" / "old.tif").write_bytes(b"old")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    claim_folder(tmp_path, {"seed": 2})
    assert not (tmp_path / "chips").exists() and not (tmp_path / "metrics.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / MARKER).read_text())["seed"] == 2


def test_cli_prints_one_line_for_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: folder is not empty and not an eoseg demo folder" in err.replace("\n", "")
    assert "Traceback" not in err


def test_cpu_threads_are_restored_after_the_demo():
    import torch

    before = torch.get_num_threads()
    with cpu_threads() as threads:
        assert 1 <= threads <= before
    assert torch.get_num_threads() == before
