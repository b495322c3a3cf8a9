"""Loss terms and their weighted combination per head (``build_criterion``)."""

from eoseg.losses.criterion import Criterion, build_criterion, build_term
from eoseg.losses.targets import head_mode
from eoseg.losses.terms import LOSSES, LossTerm

__all__ = ["LOSSES", "Criterion", "LossTerm", "build_criterion", "build_term", "head_mode"]
