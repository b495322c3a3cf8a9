"""Training: the Lightning run (``train``), optimisers and schedules, safe checkpoints, hyper-parameter search.

Import the submodules (``eoseg.training.train``, ``eoseg.training.checkpoint``, ``eoseg.training.tune``).
"""
