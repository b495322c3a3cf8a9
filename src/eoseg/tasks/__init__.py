"""Tasks: per-head targets, metrics and post-processing of each task kind (no Lightning here).

``eoseg.tasks.kinds`` (binary, multiclass, multilabel, change, regression); the LightningModule that runs
them is ``eoseg.training.module``.
"""
