"""Face data: detection, alignment, datasets, occlusion synthesis and the input pipeline.

Detection and alignment (OpenCV only)
    :class:`FaceDetector`, :class:`Face`, :class:`NoFaceError`, :func:`align_face`,
    :func:`template_landmarks`, :func:`load_aligned_face`, :func:`read_image`.
LFW protocol
    :func:`read_lfw_pairs` (:class:`LFWPairs`), :func:`lfw_training_identities`.
Occlusion synthesis
    :func:`occlude`, :func:`occlusion_map_fn` / :class:`OcclusionTF`.
Datasets
    :func:`training_dataset` (folders, occface TFRecords, insightface RecordIO),
    :func:`image_dataset`, :func:`pairs_dataset`, :func:`templates_dataset`,
    :func:`load_verification_bin`, :func:`write_tfrecords`, :func:`write_insightface_recordio`,
    :func:`prepare_dataset`.

TensorFlow-based names (datasets, pipelines) are imported on first use, so importing
``occface.data`` for detection alone stays light.
"""

from occface.data.detection import Face, FaceDetector, NoFaceError, default_detector, order_faces
from occface.data.alignment import (ARCFACE_TEMPLATE_112, align_face, center_crop,
                                    detect_and_align, load_aligned_face, read_image,
                                    similarity_transform, template_landmarks, transform_points)
from occface.data.lfw import LFWPairs, lfw_training_identities, read_lfw_names, read_lfw_pairs

# name -> submodule, imported lazily (PEP 562).
_LAZY = {
    # occlusion (numpy; the tf.data parts import TensorFlow when used)
    "occlude": "occlusion", "occlusion_map_fn": "occlusion", "OcclusionTF": "occlusion",
    "mask_templates": "occlusion", "mask_anchor_points": "occlusion",
    "warp_mask_template": "occlusion", "sunglasses_mask": "occlusion", "half_mask": "occlusion",
    "KINDS": "occlusion", "DEFAULT_TEMPLATES": "occlusion",
    # verification .bin
    "load_verification_bin": "verification", "read_verification_bin": "verification",
    "write_verification_bin": "verification", "restricted_loads": "verification",
    # RecordIO
    "RecordIOReader": "recordio", "RecordIOWriter": "recordio", "InsightFaceRecord": "recordio",
    "write_insightface_recordio": "recordio", "pack_irheader": "recordio",
    "unpack_irheader": "recordio",
    # TFRecord
    "write_tfrecords": "tfrecord", "read_manifest": "tfrecord", "make_example": "tfrecord",
    "parse_example": "tfrecord",
    # preparation
    "prepare_dataset": "prepare", "list_identity_tree": "prepare", "read_records": "prepare",
    # tf.data pipelines
    "training_dataset": "pipeline", "image_dataset": "pipeline", "pairs_dataset": "pipeline",
    "templates_dataset": "pipeline", "decode_image": "pipeline", "augment_image": "pipeline",
    "apply_cutout": "pipeline", "open_source": "pipeline",
}


def _submodule(module):
    """The submodule ``occface.data.<module>`` of :data:`_LAZY`, imported on first use (static
    imports, so that the package's import graph stays readable)."""
    if module == "occlusion":
        from occface.data import occlusion as found
    elif module == "verification":
        from occface.data import verification as found
    elif module == "recordio":
        from occface.data import recordio as found
    elif module == "tfrecord":
        from occface.data import tfrecord as found
    elif module == "prepare":
        from occface.data import prepare as found
    elif module == "pipeline":
        from occface.data import pipeline as found
    else:
        raise AssertionError(f"_LAZY names an unknown submodule {module!r}")
    return found


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'occface.data' has no attribute {name!r}")
    value = getattr(_submodule(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
