"""Burning labels onto chip grids: areas, all_touched, spatial index, boundary and contact channels."""

from __future__ import annotations

import numpy as np
from affine import Affine
from fixtures.synthetic_scenes import grid, square_buildings

from eoseg.geo.rasterize import LabelLayer, rasterize_labels


def layer(rows_cols, side=10, values=None):
    frame = square_buildings(grid(), rows_cols, side=side)
    values = np.ones(len(frame), dtype=np.int64) if values is None else np.asarray(values)
    return LabelLayer(np.asarray(frame.geometry.values, dtype=object), values)


def test_square_burns_its_area_with_its_value():
    out = rasterize_labels(layer([(5, 5), (20, 20)], values=[1, 2]), grid(), (40, 40))
    assert out.shape == (1, 40, 40)
    assert (out[0] == 1).sum() == 100 and (out[0] == 2).sum() == 100
    assert out[0, 5:15, 5:15].min() == 1 and out[0, 20:30, 20:30].min() == 2


def test_all_touched_burns_partly_covered_pixels():
    shifted = grid() @ Affine.translation(0.3, 0.3)  # building edges now cut pixels
    assert (rasterize_labels(layer([(5, 5)]), shifted, (30, 30))[0] == 1).sum() == 100
    assert (rasterize_labels(layer([(5, 5)]), shifted, (30, 30), all_touched=True)[0] == 1).sum() == 121


def test_chip_far_from_every_building_is_empty_at_a_coarser_scale():
    labels = layer([(5, 5)])
    far = grid() @ Affine.translation(1000, 1000) @ Affine.scale(2)
    assert not rasterize_labels(labels, far, (16, 16)).any()
    assert labels.query((0, 0, 1, 1)).size == 0


def test_boundary_is_the_inner_ring_of_each_building():
    out = rasterize_labels(layer([(5, 5)]), grid(), (30, 30), extra_channels=["boundary"], inner=1)
    assert out.shape == (2, 30, 30)
    assert out[1].sum() == 100 - 64  # 10 x 10 building minus its 8 x 8 interior
    assert out[1, 6:14, 6:14].sum() == 0


def test_boundary_bands_have_their_full_width_inside_and_outside():
    # building rows/cols 5..14; inner 2 px: rows/cols 5, 6 and 13, 14; outer 1 px: row/col 4 and 15
    out = rasterize_labels(layer([(5, 5)]), grid(), (30, 30), extra_channels=["boundary"], inner=2, outer=1)
    band = out[1]
    assert band.sum() == (100 - 36) + (144 - 100)
    assert band[4, 4:16].all() and band[15, 4:16].all() and band[4:16, 4].all() and band[4:16, 15].all()
    assert band[5:7, 5:15].all() and band[13:15, 5:15].all() and band[5:15, 5:7].all()  # even width: 2 on every side
    assert band[7:13, 7:13].sum() == 0 and band[3].sum() == 0 and band[:, 16].sum() == 0
    outer_only = rasterize_labels(layer([(5, 5)]), grid(), (30, 30), extra_channels=["boundary"], inner=0, outer=2)
    assert outer_only[1].sum() == 196 - 100 and outer_only[1, 5:15, 5:15].sum() == 0


def test_touching_buildings_share_an_inner_boundary():
    out = rasterize_labels(layer([(5, 5), (5, 15)]), grid(), (30, 30), extra_channels=["boundary"], inner=1)
    assert out[1, 8, 14] == 1 and out[1, 8, 15] == 1  # the shared wall, on both sides


def test_contact_is_the_gap_between_buildings_closer_than_the_spacing():
    # buildings rows 5..14, columns 5..14 and 18..27 (a 3 px gap: columns 15-17), a third one far away.
    # spacing 4 px = both buffered by 2 px (round): only column 16's centres (x = 16.5) lie within 2 px of
    # both; rows 4 and 15 too (sqrt(1.5^2 + 0.5^2) = 1.58), rows 3 and 16 not (sqrt(1.5^2 + 1.5^2) = 2.12)
    labels = layer([(5, 5), (5, 18), (30, 5)])
    out = rasterize_labels(labels, grid(), (45, 45), extra_channels=["boundary", "contact"], spacing=4)
    contact = out[2]
    assert contact[4:16, 16].all() and contact.sum() == 12
    assert not rasterize_labels(labels, grid(), (45, 45), extra_channels=["contact"], spacing=2)[1].any()  # 3 >= 2


def test_contact_leaves_footprints_out():
    # a 1 px gap (column 15), spacing 4 px: column 15 rows 3..16 (14), and beside the buildings' corners
    # columns 14 and 16 at rows 4 and 15 (4); the footprint pixels next to the gap are not contact
    out = rasterize_labels(layer([(5, 5), (5, 16)]), grid(), (30, 30), extra_channels=["contact"], spacing=4)
    contact = out[1]
    assert contact.sum() == 14 + 4 and contact[3:17, 15].all()
    assert contact[[4, 15, 4, 15], [14, 14, 16, 16]].all() and not contact[out[0] > 0].any()


def test_contact_spacing_in_map_units():
    fine = grid(res=0.5)  # 2 m = 4 px of 0.5 m: the same 12 pixels as 4 px on the 1 m grid
    frame = square_buildings(fine, [(5, 5), (5, 18)], side=10)
    labels = LabelLayer(np.asarray(frame.geometry.values, dtype=object), np.ones(2, dtype=np.int64))
    out = rasterize_labels(labels, fine, (40, 40), extra_channels=["contact"], spacing=2.0, spacing_unit="m")
    assert out[1].sum() == 12 and out[1, 4:16, 16].all()


def test_contact_reaches_buildings_outside_the_chip():
    # the chip starts at column 16: the left building lies outside it but its buffer still counts
    labels = layer([(5, 5), (5, 18)])
    out = rasterize_labels(labels, grid() @ Affine.translation(16, 0), (30, 14), extra_channels=["contact"], spacing=4)
    assert out[1].sum() == 12 and out[1, 4:16, 0].all()
