"""eoseg."""
