"""Models: architecture x encoder factory, extra heads, siamese wrapper for pairs, local weight loading."""

from eoseg.models.factory import ARCHITECTURES, MultiHeadModel, build_model, resolve_architecture
from eoseg.models.heads import activate
from eoseg.models.weights import LoadReport, load_encoder_weights, load_init_state, read_state_dict

__all__ = [
    "ARCHITECTURES",
    "LoadReport",
    "MultiHeadModel",
    "activate",
    "build_model",
    "load_encoder_weights",
    "load_init_state",
    "read_state_dict",
    "resolve_architecture",
]
