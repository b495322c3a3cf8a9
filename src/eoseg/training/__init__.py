"""eoseg.training."""
