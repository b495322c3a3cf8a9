"""eoseg.demo."""
