"""Face data: detection, alignment, datasets, occlusion synthesis and the input pipeline.

Detection and alignment (OpenCV only)
    :class:`FaceDetector`, :class:`Face`, :class:`NoFaceError`, :func:`align_face`,
    :func:`template_landmarks`, :func:`load_aligned_face`, :func:`read_image`.
LFW protocol
    :func:`read_lfw_pairs` (:class:`LFWPairs`), :func:`lfw_training_identities`.

TensorFlow-based names (datasets, pipelines) are imported on first use, so importing
``occface.data`` for detection alone stays light.
"""

import importlib

from occface.data.detection import Face, FaceDetector, NoFaceError, default_detector, order_faces
from occface.data.alignment import (ARCFACE_TEMPLATE_112, align_face, center_crop,
                                    detect_and_align, load_aligned_face, read_image,
                                    similarity_transform, template_landmarks, transform_points)
from occface.data.lfw import LFWPairs, lfw_training_identities, read_lfw_names, read_lfw_pairs

# name -> submodule, imported lazily (PEP 562).
_LAZY = {}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'occface.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"occface.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
