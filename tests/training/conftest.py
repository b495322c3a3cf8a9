"""Training tests: one torch thread (the machine is shared; threads only contend) and chip datasets."""

from __future__ import annotations

import pytest
import torch

from .chipdata import write_chips

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def chips(tmp_path_factory):
    """``chips(kind)``: the path of a synthetic prepared dataset of that kind (made once per session)."""
    made = {}

    def get(kind: str):
        if kind not in made:
            made[kind] = write_chips(tmp_path_factory.mktemp(kind) / "chips", kind)
        return made[kind]

    return get
