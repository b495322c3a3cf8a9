"""Training: the Lightning run (``train``), optimisers and schedules, safe checkpoints, hyper-parameter search.

Import the submodules (``eoseg.training.train``, ``eoseg.training.module`` (the LightningModule),
``eoseg.training.checkpoint`` (writing; reading is ``eoseg.models.checkpoint``), ``eoseg.training.tune``).
"""
