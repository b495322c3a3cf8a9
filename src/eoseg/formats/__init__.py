"""eoseg.formats."""
