"""report.html: sections, one embedded PNG per figure, self-contained (nothing fetched)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from eoseg.config import load_config
from eoseg.report.training_report import training_report

RENDER_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "render_report.sh"
IMG = re.compile(r"<img [^>]*src=\"([^\"]*)\"")


def _history(epochs: int = 4) -> list[dict]:
    return [
        {"epoch": e, "train/loss": 1.0 / (e + 1), "val/loss": 1.1 / (e + 1), "val/iou": 0.5 + 0.1 * e,
         "val/f1": 0.6 + 0.08 * e, "lr": 1e-3 * (0.5**e)}
        for e in range(epochs)
    ]


def _sample(name: str, probabilities: bool, classes: int = 2, size: int = 48) -> dict:
    rng = np.random.default_rng(len(name))
    truth = np.zeros((size, size), np.int64)
    truth[8:30, 10:36] = classes - 1
    truth[:, :3] = 255  # ignored border
    pred = truth.copy()
    pred[pred == 255] = 0
    pred = np.roll(pred, 3, axis=0)
    if probabilities:
        pred = pred.astype(np.float32) * 0.9
    return {"image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "pred": pred, "truth": truth,
            "metric": 0.75, "name": name}


def _images(page: str) -> list[str]:
    return IMG.findall(page)


def test_binary_report_has_curves_samples_and_no_confusion(tmp_path):
    config = load_config("demo")
    samples = [_sample("chip-a", True), _sample("chip-b", False), _sample("chip-c", True)]
    path = training_report(tmp_path / "run", _history(), samples, None, config)
    assert path == tmp_path / "run" / "report.html"
    page = path.read_text()
    assert len(_images(page)) == 1 + 3  # learning curves + one row per sample
    for title in ("Configuration", "Learning curves", "Validation samples (3)"):
        assert f"<h2>{title}</h2>" in page
    assert "Confusion matrix" not in page
    assert "best val/iou = 0.8000 at epoch 3" in page
    assert "chip-b · iou = 0.750" in page
    assert 'alt="learning curves: loss, iou, f1, learning rate"' in page


def test_curves_group_classes_and_loss_terms(tmp_path):
    history = [dict(row, **{"val/iou/building": 0.4, "val/iou/background": 0.9, "train/mask/bce": 0.3})
               for row in _history()]
    page = training_report(tmp_path, history, [], None, load_config("demo")).read_text()
    assert 'alt="learning curves: loss, loss terms, iou, f1, learning rate"' in page
    assert "Unet · resnet18" in page


def test_report_is_self_contained(tmp_path):
    config = load_config("demo", ["data.classes=[background, house, shed]", "task.kind=multiclass",
                                  "model.heads.mask.channels=3", "model.heads.mask.activation=softmax"])
    confusion = np.array([[900, 20, 5], [30, 400, 10], [2, 8, 100]])
    page = training_report(tmp_path, pd.DataFrame(_history()), [_sample("a", False, classes=3)], confusion,
                           config).read_text()
    sources = _images(page)
    assert len(sources) == 3  # curves, one sample, confusion
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in page.lower()
    assert "<script" not in page and "<link" not in page
    assert "<h2>Confusion matrix</h2>" in page
    assert "pixel accuracy 0.9492" in page  # (900 + 400 + 100) / 1475 correct pixels


def test_regression_samples_and_empty_history(tmp_path):
    config = load_config("demo", ["task.kind=regression"])
    sample = _sample("height", True)
    sample["truth"] = np.where(sample["truth"] == 255, 255, sample["truth"] * 7)
    page = training_report(tmp_path, [], [sample], None, config).read_text()
    assert "No epochs were recorded." in page
    assert len(_images(page)) == 1


def test_sample_without_truth_is_refused(tmp_path):
    sample = _sample("broken", True)
    del sample["truth"]
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['truth'\]"):
        training_report(tmp_path, _history(), [sample], None, load_config("demo"))
    assert not (tmp_path / "report.html").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.timeout(90)
def test_report_renders_in_headless_chromium(tmp_path):
    report = training_report(tmp_path, _history(), [_sample("a", True), _sample("b", False)],
                             np.array([[50, 5], [3, 20]]), load_config("demo"))
    screenshot = tmp_path / "report.png"
    subprocess.run(["bash", str(RENDER_SCRIPT), str(report), str(screenshot)], check=True, capture_output=True,
                   timeout=80)
    picture = cv2.imread(str(screenshot))
    assert picture.shape == (2400, 1280, 3)
    hsv = cv2.cvtColor(picture, cv2.COLOR_BGR2HSV)
    colourful = (hsv[..., 1] > 80) & (hsv[..., 2] > 60)
    # the curves, sample panels and confusion matrix show in colour; a page of broken images would not
    assert colourful.mean() > 0.02
