"""RLE as in the Kaggle clouds CSV: 1-indexed starts, column-major order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eoseg.errors import InputError
from eoseg.formats.rle import rle_decode, rle_encode

KNOWN = np.array([[0, 1], [1, 1], [0, 0]], np.uint8)  # columns read top to bottom: 0 1 0 | 1 1 0


def test_known_string():
    assert rle_encode(KNOWN) == "2 1 4 2"
    assert np.array_equal(rle_decode("2 1 4 2", (3, 2)), KNOWN)


def test_empty_mask_is_an_empty_string_and_blank_cells_decode_to_zeros():
    assert rle_encode(np.zeros((4, 5))) == ""
    assert not rle_decode("", (4, 5)).any()
    assert not rle_decode(float("nan"), (4, 5)).any()  # pandas reads a blank cell as NaN


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 1)))
def test_round_trip(mask):
    assert np.array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_bad_strings_are_clear_errors():
    with pytest.raises(InputError, match="odd number of values"):
        rle_decode("1 2 3", (3, 3))
    with pytest.raises(InputError, match=r"runs fall outside a 3x3 mask"):
        rle_decode("8 5", (3, 3))
