"""Fixtures of the reliability catalogue (the helpers live in reliability_helpers.py)."""

from reliability_helpers import checkpoint, rasters

__all__ = ["checkpoint", "rasters"]
