"""eoseg.metrics."""
