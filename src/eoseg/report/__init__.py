"""eoseg.report."""
