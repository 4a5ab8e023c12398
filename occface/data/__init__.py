"""Face data: detection, alignment, datasets, occlusion synthesis and the input pipeline.

Detection and alignment (OpenCV only)
    :class:`FaceDetector`, :class:`Face`, :class:`NoFaceError`, :func:`align_face`,
    :func:`template_landmarks`, :func:`load_aligned_face`, :func:`read_image`.
LFW protocol
    :func:`read_lfw_pairs` (:class:`LFWPairs`), :func:`lfw_training_identities`.
Image files
    :data:`IMAGE_EXTENSIONS`, :func:`identity_folders` (identity-per-folder trees).
Occlusion synthesis
    :func:`occlude`, :func:`occlusion_map_fn` / :class:`OcclusionTF`; the occluders'
    shapes: :func:`warp_mask_template` (MaskTheFace), :func:`sunglasses_mask`, :func:`half_mask`,
    :func:`block_mask`.
Datasets
    :func:`training_dataset` (folders, occface TFRecords, insightface RecordIO:
    :func:`open_source`; :func:`decode_image`, :func:`augment_image`, :func:`apply_cutout`),
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
from occface.data.folders import IMAGE_EXTENSIONS, identity_folders
from occface.data.lfw import LFWPairs, lfw_training_identities, read_lfw_names, read_lfw_pairs

# name -> submodule, imported lazily (PEP 562).
_LAZY = {
    # occlusion (numpy; the tf.data parts import TensorFlow when used)
    "occlude": "occlusion", "occlusion_map_fn": "occlusion", "OcclusionTF": "occlusion",
    "KINDS": "occlusion",
    # the occluders' shapes (numpy + OpenCV)
    "mask_templates": "occluders", "mask_anchor_points": "occluders",
    "warp_mask_template": "occluders", "sunglasses_mask": "occluders", "half_mask": "occluders",
    "block_mask": "occluders", "DEFAULT_TEMPLATES": "occluders",
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
    "training_dataset": "pipeline", "open_source": "sources", "decode_image": "decode",
    "augment_image": "augment", "apply_cutout": "augment", "image_dataset": "eval_datasets",
    "pairs_dataset": "eval_datasets", "templates_dataset": "eval_datasets",
}


def _submodule(module):
    """The submodule ``occface.data.<module>`` of :data:`_LAZY`, imported on first use (static
    imports, so that the package's import graph stays readable)."""
    if module == "occlusion":
        from occface.data import occlusion as found
    elif module == "occluders":
        from occface.data import occluders as found
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
    elif module == "sources":
        from occface.data import sources as found
    elif module == "decode":
        from occface.data import decode as found
    elif module == "augment":
        from occface.data import augment as found
    elif module == "eval_datasets":
        from occface.data import eval_datasets as found
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
