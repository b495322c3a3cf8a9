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
    out = rasterize_labels(layer([(5, 5)]), grid(), (30, 30), extra_channels=["boundary"], width=1)
    assert out.shape == (2, 30, 30)
    assert out[1].sum() == 100 - 64  # 10 x 10 building minus its 8 x 8 interior
    assert out[1, 6:14, 6:14].sum() == 0


def test_contact_marks_the_gap_between_close_buildings_only():
    # two buildings (rows 5..14) with a 2-pixel gap (columns 15, 16) and a third one far away
    labels = layer([(5, 5), (5, 17), (25, 5)])
    out = rasterize_labels(labels, grid(), (40, 40), extra_channels=["boundary", "contact"], width=2)
    contact = out[2]
    # within 2 pixels of both buildings: the gap columns, from row 3 to row 16
    assert contact[3:17, 15:17].all()
    assert contact.sum() == 14 * 2  # and nothing else: the lone building touches nobody
