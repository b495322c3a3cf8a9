"""Scene inference: windows, blending, TTA, ensembles and a streaming writer of COG outputs.

``predict_scene(bundles, images, out_dir, spec, post)`` is the entry point (see :mod:`.predictor`).
"""

from eoseg.inference.predictor import SceneOutputs, predict_scene, predict_scenes

__all__ = ["SceneOutputs", "predict_scene", "predict_scenes"]
