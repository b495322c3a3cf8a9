"""Post-processing of predictions (no torch here).

- :mod:`~eoseg.post.postprocess`: :class:`Postprocessor`, the only code from probabilities to masks and
  classes: thresholds (one rule for numpy and torch, so training validation decides as predict does),
  image-level gating, minimum area, the per-building class vote (xView2 damage);
- :mod:`~eoseg.post.vectorize`: polygons with class, area in m² and mean probability;
- :mod:`~eoseg.post.ensemble`: mean or k-of-n vote of rasters written earlier;
- :mod:`~eoseg.post.search`: threshold and minimum-area search on validation predictions;
- :mod:`~eoseg.post.zonal`, :mod:`~eoseg.geo.products`: zonal means, probability reading, output checks.
"""
