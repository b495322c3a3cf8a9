"""eoseg.post."""
