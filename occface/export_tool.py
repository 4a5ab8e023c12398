"""Compatibility: the logic of ``tools/export.py`` moved to :mod:`occface.serving.publish`.

Re-exports the names ``occface.export_tool`` had; new code imports them from
:mod:`occface.serving.publish`, :mod:`occface.serving.cascade` and :mod:`occface.models.io`.
"""
from occface.models.io import load_keras_model
from occface.serving.cascade import cascade_policy, region_policy
from occface.serving.publish import (SAMPLES_DIR, calibrate_threshold, lfw_pair_faces, run_export,
                                     sample_faces)

__all__ = ["load_keras_model", "cascade_policy", "region_policy", "SAMPLES_DIR",
           "calibrate_threshold", "lfw_pair_faces", "run_export", "sample_faces"]
