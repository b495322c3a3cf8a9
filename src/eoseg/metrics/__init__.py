"""Metrics (numpy, no torch): pixel scores from confusion counts, SpaceNet object F1, the xView2 score,
geopose per-city R², clouds mean Dice, and :func:`~eoseg.metrics.evaluate.evaluate` over many scenes."""
