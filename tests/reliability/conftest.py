"""Fixtures of the reliability catalogue (the helpers live in reliability_helpers.py)."""

import logging
import sys

import pytest
from reliability_helpers import checkpoint, rasters

__all__ = ["checkpoint", "rasters"]


@pytest.fixture(autouse=True)
def _log_handlers_on_an_open_stderr():
    """Libraries (lightning, huggingface_hub) add a log handler on the stderr of the test that imported them,
    which pytest closes afterwards; point such handlers at the current stderr, as in a shell."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # (setStream would flush the closed one first)
