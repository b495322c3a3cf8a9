"""Self-training: pseudo-labels from predictions on unlabelled scenes (:mod:`eoseg.selftrain.pseudo`)."""
