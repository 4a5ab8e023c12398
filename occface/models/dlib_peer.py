"""dlib's face-recognition ResNet as an independent peer recognizer (benchmarks and evaluation).

``dlib_face_recognition_resnet_model_v1`` (Davis E. King; 99.38 % on LFW as reported by its
author; released into the public domain, CC0, and distributed on PyPI by
``face_recognition_models``) maps a 150 × 150 face chip to a 128-d descriptor. It shares no
weights, training data or code with occface's recognizers or with insightface's ArcFace
MobileFaceNet, which makes it the evaluator of choice when a model that was *in* a loss (ID-GAN's
frozen recognizer) must not also be the judge.

occface's faces are aligned to the ArcFace 112-px template (``occface.data.alignment.
ARCFACE_TEMPLATE_112``); dlib aligns its chips with its own 5-point rule (``get_face_chip``,
padding 0.25). :data:`DLIB_CHIP_LANDMARKS` are the ArcFace template's five points in dlib's chip,
so one fixed similarity warp turns an occface face into a dlib chip: every face (clean, occluded,
inpainted) gets the same geometry, and no landmark detector runs on an occluded face.

Optional dependency: ``pip install dlib-bin face_recognition_models`` (in ``requirements.txt``
for the tests and benchmarks; not needed by the package itself).

``load_embedding_model("dlib")`` (:mod:`occface.models.io`) returns :func:`dlib_embedding_model`,
so every tool that takes ``--model`` / ``--recognizer`` takes ``dlib`` too.
"""

import os

import numpy as np

from occface.choices import DLIB_SPEC, is_dlib_spec  # noqa: F401  (re-exported)

__all__ = ["DLIB_CHIP_SIZE", "DLIB_CHIP_LANDMARKS", "ARCFACE112_TO_DLIB", "DLIB_SPEC", "arcface_to_dlib_matrix",
           "dlib_chips", "dlib_model_file", "dlib_embedding_model", "is_dlib_spec"]


#: Side of dlib's face chip.
DLIB_CHIP_SIZE = 150

#: The ArcFace 112-px template's points (left eye, right eye, nose, left and right mouth corner)
#: in dlib's 150-px chip (``get_face_chip_details(shape, 150, padding=0.25)``), measured: mean over
#: 149 LFW faces (every 40th aligned face; dlib's HOG detector and 5-point shape predictor on the
#: face at 224 px), per-point standard deviation 2.9–4.5 px. Scale to the ArcFace crop 1.53,
#: so the chip spans ArcFace x 7–105, y 23–121 (the last 9 rows lie below the crop and repeat its
#: edge).
DLIB_CHIP_LANDMARKS = np.array([[47.73, 43.41], [101.68, 43.37], [74.73, 74.22],
                                [52.41, 105.70], [97.09, 105.67]], np.float64)

#: The least-squares similarity (Umeyama, ``occface.data.alignment.similarity_transform``) from
#: the ArcFace 112-px template to :data:`DLIB_CHIP_LANDMARKS`: scale 1.531, rotation -0.28°.
ARCFACE112_TO_DLIB = np.array([[1.5310679381289625, -0.007399574896028851, -10.519821548178598],
                               [0.007399574896028849, 1.5310679381289627, -36.025550662899064]])

_MISSING = ("dlib is not installed (the 'dlib' peer recognizer needs: pip install dlib-bin "
            "face_recognition_models)")


def arcface_to_dlib_matrix(size=112):
    """The similarity warp from an ArcFace-aligned ``size`` × ``size`` face to dlib's chip.

    :data:`ARCFACE112_TO_DLIB` with its linear part scaled by ``112 / size`` (the template
    scales with the crop; the translation stays).

    Returns
    -------
    np.ndarray, float64, shape (2, 3)
        ``cv2.warpAffine`` matrix: chip point ``= M[:, :2] @ face point + M[:, 2]``.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    m = ARCFACE112_TO_DLIB.copy()
    m[:, :2] *= 112.0 / size
    return m


def dlib_chips(images):
    """Warp ArcFace-aligned square faces to dlib chips.

    Parameters
    ----------
    images : np.ndarray, uint8, shape (N, S, S, 3)
        RGB faces aligned to the ArcFace template at any size ``S``.

    Returns
    -------
    np.ndarray, uint8, shape (N, 150, 150, 3)
        C-contiguous chips (pixels beyond the face repeat its edge).
    """
    import cv2
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be (N, S, S, 3) square RGB faces; got shape {images.shape}")
    m = arcface_to_dlib_matrix(images.shape[1])
    out = np.empty((len(images), DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3), np.uint8)
    for i, img in enumerate(images):
        out[i] = cv2.warpAffine(np.ascontiguousarray(img, np.uint8), m,
                                (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


def dlib_model_file(path=None):
    """The recognition model's ``.dat`` file: ``path``, else ``face_recognition_models``'.

    Raises
    ------
    FileNotFoundError
        ``path`` is given and does not exist.
    ValueError
        No ``path`` and ``face_recognition_models`` is not installed.
    """
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"dlib model file not found: {path}")
        return str(path)
    try:
        import face_recognition_models
    except ImportError:
        raise ValueError(_MISSING) from None
    return face_recognition_models.face_recognition_model_location()


def dlib_embedding_model(model_file=None, batch_size=64):
    """dlib's ResNet as an :class:`~occface.models.embedding_model.EmbeddingModel`.

    Parameters
    ----------
    model_file : str, optional
        ``dlib_face_recognition_resnet_model_v1.dat``; default: the one ``face_recognition_models``
        installs.
    batch_size : int
        Chips per call into dlib.

    Returns
    -------
    EmbeddingModel
        ``model(images)`` maps ArcFace-aligned faces ``(N, H, W, 3)`` in [0, 255] (resized to
        112 px first) to ``np.ndarray (N, 128)`` float32 descriptors (norm ~1.4; dlib's rule:
        the same person below Euclidean distance 0.6; occface scores their cosine).

    Raises
    ------
    ValueError
        dlib (or, without ``model_file``, ``face_recognition_models``) is not installed.
    FileNotFoundError
        ``model_file`` does not exist.
    """
    from occface.models.embedding_model import EmbeddingModel
    try:
        import dlib
    except ImportError:
        raise ValueError(_MISSING) from None
    path = dlib_model_file(model_file)
    net = dlib.face_recognition_model_v1(path)

    def fn(x):
        chips = dlib_chips(x)
        out = [np.asarray(net.compute_face_descriptor(list(chips[s:s + batch_size])), np.float32)
               for s in range(0, len(chips), batch_size)]
        return np.concatenate(out, 0).reshape(len(chips), 128)

    return EmbeddingModel(fn, (112, 112), "uint8", source=path, kind="dlib", embedding_size=128,
                          info={"model": "dlib_face_recognition_resnet_model_v1",
                                "licence": "public domain (CC0), Davis E. King",
                                "alignment": "ArcFace 112 template warped to dlib's 150-px chip"})
