"""Post-processing of predictions (no torch here).

- :mod:`~eoseg.post.threshold`: per-class thresholds, minimum-area removal, image-level gating;
- :mod:`~eoseg.post.vectorize`: polygons with class, area in m² and mean probability;
- :mod:`~eoseg.post.vote`: per-polygon class vote from a class-probability raster (xView2 damage);
- :mod:`~eoseg.post.ensemble`: mean or k-of-n vote of rasters written earlier;
- :mod:`~eoseg.post.search`: threshold and minimum-area search on validation predictions;
- :mod:`~eoseg.post.zonal`, :mod:`~eoseg.geo.products`: zonal means, probability reading, output checks.
"""
