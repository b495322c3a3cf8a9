"""Tasks: per-head targets, metrics and post-processing of each task kind, and the LightningModule.

``eoseg.tasks.kinds`` (binary, multiclass, multilabel, change, regression) and ``eoseg.tasks.module``.
"""
