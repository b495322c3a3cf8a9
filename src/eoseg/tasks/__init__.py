"""eoseg.tasks."""
