"""eoseg.losses."""
