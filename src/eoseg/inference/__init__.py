"""eoseg.inference."""
