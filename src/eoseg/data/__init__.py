"""eoseg.data."""
