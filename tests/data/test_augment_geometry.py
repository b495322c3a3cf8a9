"""Geometry-aware augmentation (``data.geometry``, the geopose recipe): values tied to the pixel size follow the zoom.

Hand-computed expectations on a 64 x 64 chip: input channel 0 an image, channel 1 the ground sample
distance 0.5 m/px normalised with mean 0.4, std 0.1 (value 1.0); target ``magnitude`` 10 px everywhere
(a pixel length), ``height`` 7 m (metres, not a pixel length), ``flow`` the direction (sin θ, cos θ).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from eoseg.config import load_config
from eoseg.config.schema import AugmentSpec, GeometrySpec
from eoseg.data.augment import Augment, GsdChannel
from eoseg.errors import ConfigError

SIZE, THETA = 64, 0.6
GSD = GsdChannel(index=1, mean=0.4, std=0.1)


def _sample() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    image = np.zeros((2, SIZE, SIZE), np.float32)
    image[0] = np.arange(SIZE, dtype=np.float32)[None, :] / SIZE  # a ramp along the columns
    image[1] = GSD.normalised(0.5)
    flow = np.empty((2, SIZE, SIZE), np.float32)
    flow[0], flow[1] = math.sin(THETA), math.cos(THETA)
    targets = {"magnitude": np.full((1, SIZE, SIZE), 10.0, np.float32),
               "height": np.full((1, SIZE, SIZE), 7.0, np.float32), "flow": flow}
    return image, np.ones((SIZE, SIZE), bool), targets


def _augment(*specs: AugmentSpec) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    augment = Augment(list(specs), ["magnitude", "height", "flow"], directions=["flow"], lengths=["magnitude"],
                      gsd=GSD)
    return augment(*_sample(), seed=(0, 1, 2))


@pytest.mark.parametrize(
    "spec",
    [AugmentSpec(name="Affine", p=1.0, params={"scale": [2.0, 2.0]}),  # zoom 2x about the centre
     AugmentSpec(name="RandomSizedCrop", p=1.0, params={"min_max_height": [32, 32], "size": [SIZE, SIZE]})],
    ids=["scale-2x", "crop-half-resized"],
)
def test_a_2x_zoom_doubles_the_magnitude_and_halves_the_gsd(spec):
    image, valid, out = _augment(spec)
    assert valid.all()  # a 2x zoom (or a half-side crop) fills the chip from inside it
    assert out["magnitude"] == pytest.approx(np.full((1, SIZE, SIZE), 20.0))  # 10 px x 2
    assert out["height"] == pytest.approx(np.full((1, SIZE, SIZE), 7.0))  # metres: unchanged
    gsd = image[1] * GSD.std + GSD.mean
    assert gsd == pytest.approx(np.full((SIZE, SIZE), 0.25), abs=1e-6)  # 0.5 m/px / 2 (normalised -1.5)
    assert image[1] == pytest.approx(np.full((SIZE, SIZE), -1.5), abs=1e-5)
    x, y = out["flow"][:, 32, 32]
    assert math.atan2(x, y) == pytest.approx(THETA, abs=1e-5)  # no rotation: the angle stays


def test_a_90_degree_rotation_adds_90_degrees_to_the_angle_and_keeps_magnitude_and_gsd():
    before = _sample()[0]
    image, _, out = _augment(AugmentSpec(name="Affine", p=1.0, params={"rotate": [90, 90]}))
    assert image[0] == pytest.approx(np.rot90(before[0], 1), abs=1e-5)  # counter-clockwise on screen, as np.rot90
    x, y = out["flow"][:, 32, 32]
    assert math.atan2(x, y) % (2 * math.pi) == pytest.approx(THETA + math.pi / 2, abs=1e-5)  # the seed's θ + π/2
    assert math.hypot(x, y) == pytest.approx(1.0, abs=1e-5)
    assert out["magnitude"][0, 32, 32] == pytest.approx(10.0) and image[1, 32, 32] == pytest.approx(1.0)


def test_colour_transforms_leave_the_gsd_plane_alone():
    before = _sample()[0]
    image, _, _ = _augment(AugmentSpec(name="RandomBrightnessContrast", p=1.0,
                                       params={"brightness_limit": [0.5, 0.5], "contrast_limit": [0.5, 0.5]}))
    assert not np.allclose(image[0], before[0])  # the image channel changed
    assert np.array_equal(image[1], before[1])  # the gsd plane did not


def test_gsd_channel_comes_from_the_prepared_statistics():
    stats = {"inputs": ["red", "gsd"], "channels": [{"mean": 9.0, "std": 3.0}, {"mean": 0.4, "std": 0.1}]}
    augment = Augment.from_config([AugmentSpec(name="Transpose")], ["magnitude"], [],
                                  GeometrySpec(gsd_input="gsd", pixel_lengths=["magnitude"]), stats)
    assert augment.gsd == GsdChannel(index=1, mean=0.4, std=0.1) and augment.lengths == ["magnitude"]
    assert Augment.from_config([], ["magnitude"], [], GeometrySpec(gsd_input="gsd"), stats) is None
    with pytest.raises(ConfigError, match=r"data.geometry.gsd_input='height': not an input channel of the prepared "
                                          r"chips \(\['red', 'gsd'\]\)"):
        Augment.from_config([AugmentSpec(name="Transpose")], [], [], GeometrySpec(gsd_input="height"), stats)


def test_geometry_names_must_exist_in_the_config():
    with pytest.raises(ConfigError, match=r"geometry.gsd_input='gsdd' is not one of data.inputs"):
        load_config("geopose", ["data.geometry.gsd_input=gsdd"])
    with pytest.raises(ConfigError, match=r"geometry.pixel_lengths: \['magnitud'\] are not data.targets"):
        load_config("geopose", ["data.geometry.pixel_lengths=[magnitud]"])
