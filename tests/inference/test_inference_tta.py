"""Test-time augmentation: dense maps and direction vectors are de-augmented right for every transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_helpers import PointwiseModel, make_bundle
from torch import nn

from eoseg.config.schema import HeadSpec, PredictSpec
from eoseg.inference.engine import EnsembleRunner
from eoseg.inference.tta import MODES, Transform, tta_transforms

D4 = [Transform(steps) for steps in MODES["d4"]]


def centroid_direction(img: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` direction from the image centre to the intensity centroid: x along columns, y along rows."""
    n_rows, n_cols = img.shape[-2:]
    rows = torch.arange(n_rows, dtype=img.dtype) - (n_rows - 1) / 2
    cols = torch.arange(n_cols, dtype=img.dtype) - (n_cols - 1) / 2
    mass = img.sum(dim=(-2, -1))
    x = (img * cols).sum(dim=(-2, -1)) / mass
    y = (img * rows[:, None]).sum(dim=(-2, -1)) / mass
    return torch.stack([x[:, 0], y[:, 0]], dim=1)


class CentroidModel(nn.Module):
    """A model with a dense head (the image) and a direction head (towards the bright spot)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": x[:, :1], "direction": centroid_direction(x[:, :1])}


def bright_spot(row: int, col: int, size: int = 9) -> torch.Tensor:
    img = torch.zeros(1, 1, size, size)
    img[0, 0, row, col] = 1.0
    return img


@pytest.mark.parametrize("transform", D4, ids=lambda t: "".join(t.steps) or "id")
def test_dense_deaugmentation_inverts_every_d4_transform(transform: Transform) -> None:
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(transform.deaugment_dense(transform.augment(x), (8, 8)), x)


@pytest.mark.parametrize("transform", D4, ids=lambda t: "".join(t.steps) or "id")
def test_vector_deaugmentation_rotates_back_for_every_d4_transform(transform: Transform) -> None:
    img = bright_spot(1, 6) + 0.5 * bright_spot(5, 2)  # an asymmetric pattern
    original = centroid_direction(img)
    seen = centroid_direction(transform.augment(img))  # what a model sees on the augmented image
    torch.testing.assert_close(transform.deaugment_vector(seen), original)
    torch.testing.assert_close(seen, original @ transform.matrix.T)  # and the matrix is the augmentation


def test_vector_transforms_by_hand() -> None:
    east = bright_spot(4, 8)  # bright spot right of centre: direction (1, 0)
    torch.testing.assert_close(centroid_direction(east), torch.tensor([[4.0, 0.0]]))
    rot = Transform(("r",))  # counter-clockwise: right becomes up (y points down the rows)
    torch.testing.assert_close(centroid_direction(rot.augment(east)), torch.tensor([[0.0, -4.0]]))
    torch.testing.assert_close(rot.deaugment_vector(torch.tensor([[0.0, -4.0]])), torch.tensor([[4.0, 0.0]]))
    # the geopose recipe's rules (and the training augmentations'): flips negate one axis, transpose swaps
    vector = torch.tensor([[0.6, 0.8]])
    torch.testing.assert_close(Transform(("h",)).deaugment_vector(vector), torch.tensor([[-0.6, 0.8]]))
    torch.testing.assert_close(Transform(("v",)).deaugment_vector(vector), torch.tensor([[0.6, -0.8]]))
    torch.testing.assert_close(Transform(("t",)).deaugment_vector(vector), torch.tensor([[0.8, 0.6]]))
    transpose = Transform(("t",))  # right becomes down
    torch.testing.assert_close(centroid_direction(transpose.augment(east)), torch.tensor([[0.0, 4.0]]))


def test_scaled_transform_restores_size() -> None:
    x = torch.ones(1, 2, 64, 64) * 3.0
    for t in tta_transforms("flips", [0.5, 1.5]):
        y = t.augment(x)
        assert y.shape[-1] == round(64 * t.scale / 32) * 32
        torch.testing.assert_close(t.deaugment_dense(y, (64, 64)), x)


def _runner(bundles, **spec) -> EnsembleRunner:
    return EnsembleRunner(bundles, PredictSpec(device="cpu", **spec), torch.device("cpu"), [0] * len(bundles))


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_equivariant_model_tta_equals_no_tta(mode: str) -> None:
    bundle = make_bundle(PointwiseModel(3), bands=["r", "g", "b"], heads={"mask": HeadSpec()})
    x = torch.randn(2, 3, 32, 32).numpy()
    plain = _runner([bundle])([x]).dense["mask"]
    tta = _runner([bundle], tta=mode)([x]).dense["mask"]
    torch.testing.assert_close(torch.from_numpy(tta), torch.from_numpy(plain), atol=1e-6, rtol=1e-5)
    assert plain.shape == (2, 1, 32, 32) and 0 < plain.min() and plain.max() < 1  # sigmoid applied


def test_direction_head_under_d4_tta_matches_plain_prediction() -> None:
    heads = {"mask": HeadSpec(activation="identity"), "direction": HeadSpec(kind="direction")}
    bundle = make_bundle(CentroidModel(), heads=heads)
    x = (bright_spot(1, 6) + 0.5 * bright_spot(5, 2)).numpy()
    plain = _runner([bundle])([x]).image["direction"]
    d4 = _runner([bundle], tta="d4")([x]).image["direction"]
    torch.testing.assert_close(torch.from_numpy(d4), torch.from_numpy(plain))
    torch.testing.assert_close(torch.from_numpy(plain).norm(dim=1), torch.ones(1))  # unit vector


def test_geometric_mean_of_ensemble() -> None:
    class Constant(nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"mask": torch.full_like(x[:, :1], self.p)}

    bundles = [make_bundle(Constant(0.2)), make_bundle(Constant(0.8))]
    x = torch.zeros(1, 1, 4, 4).numpy()
    assert _runner(bundles)([x]).dense["mask"] == pytest.approx(0.5)
    assert _runner(bundles, merge="gmean")([x]).dense["mask"] == pytest.approx(0.4)  # sqrt(0.2 * 0.8)
    weighted = _runner(bundles, ensemble_weights=[3, 1])([x]).dense["mask"]
    assert weighted == pytest.approx(0.35)  # (3 * 0.2 + 0.8) / 4


def test_multi_scale_tta_runs_inside_the_pass() -> None:
    bundle = make_bundle(PointwiseModel(3), bands=["r", "g", "b"], heads={"mask": HeadSpec()})
    x = torch.ones(2, 3, 64, 64).numpy() * np.array([0.5, -1.0, 2.0], np.float32)[None, :, None, None]
    plain = _runner([bundle])([x]).dense["mask"]
    scaled = _runner([bundle], tta="flips", tta_scales=[0.5, 1.0, 1.5])([x]).dense["mask"]
    assert scaled.shape == plain.shape  # outputs back at the window size
    np.testing.assert_allclose(scaled, plain, rtol=1e-5)  # a constant image looks the same at every scale
