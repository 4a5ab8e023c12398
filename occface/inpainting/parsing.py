"""Face-parsing network S for the ID-GAN structure loss, and the labels it is trained on.

The paper uses a pretrained face-parsing network. None can be downloaded here, so occface ships a
small encoder–decoder (:func:`build_face_parser`) trained in the package on labels that it can
make itself: geometric regions drawn from the five facial landmarks
(:func:`parsing_labels_from_landmarks`), with random similarity transforms (rotation, scale,
shift, flip) applied to image and landmarks together so that the parser has to find the regions
from appearance rather than memorise a fixed layout.

Limits of the default parser (documented, by design):

* Five classes only — background, skin, eyes, nose, mouth — drawn as ellipses whose sizes are
  fixed fractions of the inter-ocular distance ``d`` and eye–mouth distance ``h``. Hair, ears,
  eyebrows, neck, glasses and the occluders themselves are not modelled (hair/ears fall into
  skin or background depending on the ellipse), and region borders are geometric, not the real
  contours. The structure loss therefore mainly enforces the *layout* of the facial parts
  (where the eyes/nose/mouth are) in the inpainted region, which is its role in ID-GAN.
* Meant for roughly frontal, aligned faces (the occface alignment templates); profile views
  and strong expressions (open mouth) are outside what the ellipses describe.
* Pluggable: any callable ``images [0, 255] (N, H, W, 3) -> logits (N, H, W, K)`` can replace it
  in :func:`occface.inpainting.structure_loss`.
"""

import logging

import numpy as np

import keras
from keras import layers

log = logging.getLogger(__name__)

PARSING_CLASSES = ("background", "skin", "eyes", "nose", "mouth")
BACKGROUND, SKIN, EYES, NOSE, MOUTH = range(5)

# Horizontal flip swaps left/right landmarks (order: left eye, right eye, nose, left mouth corner,
# right mouth corner, as in the ArcFace / occface 5-point templates).
FLIP_PERMUTATION = (1, 0, 2, 4, 3)

# Region ellipses, in units of the inter-ocular distance d (across) and eye–mouth distance h
# (along the face axis); see parsing_labels_from_landmarks.
_SKIN_CENTRE, _SKIN_RA, _SKIN_RB = 0.35, 1.15, 1.25
_EYE_RA, _EYE_RB = 0.25, 0.13
_NOSE_CENTRE, _NOSE_RA = 0.65, 0.20
_MOUTH_PAD, _MOUTH_RB = 0.05, 0.17


def parsing_labels_from_landmarks(landmarks, size):
    """Face-parsing labels made from five landmarks.

    With eye centre ``E``, mouth centre ``Mo``, face axis ``u = Mo − E`` (length ``h``), inter-ocular
    vector of length ``d`` and nose tip ``N``, the regions are ellipses in the face frame (axes
    across/along ``u``), painted in this order (later ones win):

    ==========  ===============================  ===================================
    class       centre                           semi-axes (across, along)
    ==========  ===============================  ===================================
    1 skin      ``E + 0.35 u``                   ``1.15 d``, ``1.25 h``
    3 nose      ``E + 0.65 (N − E)``             ``0.20 d``, ``0.45 |N − E| + 0.1 h``
    4 mouth     ``Mo``                           ``½|mouth corners| + 0.05 d``, ``0.17 d``
    2 eyes      each eye landmark                ``0.25 d``, ``0.13 d``
    ==========  ===============================  ===================================

    Everything else is 0 (background).

    Parameters
    ----------
    landmarks : (5, 2) or (N, 5, 2) array
        ``(x, y)`` pixel coordinates in the ``size × size`` image: left eye, right eye, nose tip,
        left and right mouth corners.
    size : int
        Side of the label map.

    Returns
    -------
    uint8 array (size, size) or (N, size, size) with values in ``range(len(PARSING_CLASSES))``.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be (5, 2) or (N, 5, 2), got shape {np.shape(landmarks)}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks contain non-finite values")
    size = int(size)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.stack([xs, ys], axis=-1)  # (S, S, 2) as (x, y)
    out = np.zeros((pts.shape[0], size, size), np.uint8)
    for i, (le, re, nose, lm, rm) in enumerate(pts):
        eye_c = 0.5 * (le + re)
        mouth_c = 0.5 * (lm + rm)
        u = mouth_c - eye_c
        h = float(np.hypot(*u))
        d = float(np.hypot(*(re - le)))
        if h < 1e-6 or d < 1e-6:
            raise ValueError(f"degenerate landmarks for sample {i}: eye/mouth points coincide")
        along = u / h
        across = np.array([along[1], -along[0]])  # (1, 0) for an upright face

        def ellipse(centre, ra, rb):
            rel = grid - centre
            a = rel @ across
            b = rel @ along
            return (a / ra) ** 2 + (b / rb) ** 2 <= 1.0

        labels = out[i]
        labels[ellipse(eye_c + _SKIN_CENTRE * u, _SKIN_RA * d, _SKIN_RB * h)] = SKIN
        nose_vec = nose - eye_c
        nose_len = float(np.hypot(*nose_vec))
        labels[ellipse(eye_c + _NOSE_CENTRE * nose_vec, _NOSE_RA * d,
                       0.45 * nose_len + 0.1 * h)] = NOSE
        mouth_half = 0.5 * float(np.hypot(*(rm - lm)))
        labels[ellipse(mouth_c, mouth_half + _MOUTH_PAD * d, _MOUTH_RB * d)] = MOUTH
        labels[ellipse(le, _EYE_RA * d, _EYE_RB * d)] = EYES
        labels[ellipse(re, _EYE_RA * d, _EYE_RB * d)] = EYES
    return out[0] if single else out


def random_similarity(rng, size, max_rotation=15.0, max_shift=0.08, scale_range=(0.9, 1.1),
                      flip=True):
    """Draw a random similarity transform about the image centre.

    Returns
    -------
    matrix : (2, 3) float64
        Affine matrix for ``cv2.warpAffine`` (includes the flip if drawn).
    flipped : bool
        Whether a horizontal flip is part of the transform.
    """
    angle = rng.uniform(-max_rotation, max_rotation)
    scale = rng.uniform(*scale_range)
    shift = rng.uniform(-max_shift, max_shift, size=2) * size
    flipped = bool(flip and rng.random() < 0.5)
    c = (size - 1) / 2.0
    theta = np.deg2rad(angle)
    rot = scale * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    f = np.diag([-1.0, 1.0]) if flipped else np.eye(2)
    lin = rot @ f
    offset = np.array([c, c]) + shift - lin @ np.array([c, c])
    return np.concatenate([lin, offset[:, None]], axis=1), flipped


def augment_face_and_landmarks(image, landmarks, rng, max_rotation=15.0, max_shift=0.08,
                               scale_range=(0.9, 1.1), flip=True):
    """Apply one random similarity transform (rotation, scale, shift, flip) to a face and its points.

    Parameters
    ----------
    image : (S, S, 3) uint8 or float array in [0, 255]
    landmarks : (5, 2) array of ``(x, y)`` pixels (template order).
    rng : numpy.random.Generator
    max_rotation : float
        Degrees (the paper augments with ±15°).
    max_shift : float
        Fraction of the side.
    scale_range : (float, float)
    flip : bool
        Allow horizontal flips (landmarks are re-ordered so left stays left).

    Returns
    -------
    (image, landmarks) : the warped image (same dtype/shape, borders reflected) and the
    transformed (5, 2) float32 landmarks (left/right re-ordered after a flip).
    """
    import cv2

    image = np.asarray(image)
    size = image.shape[0]
    if image.ndim != 3 or image.shape[1] != size:
        raise ValueError(f"image must be square (S, S, C), got shape {image.shape}")
    matrix, flipped = random_similarity(rng, size, max_rotation, max_shift, scale_range, flip)
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    if warped.ndim == 2:
        warped = warped[..., None]
    pts = np.asarray(landmarks, np.float64)
    pts = pts @ matrix[:, :2].T + matrix[:, 2]
    if flipped:
        pts = pts[list(FLIP_PERMUTATION)]
    return warped, pts.astype(np.float32)


def build_face_parser(image_size=128, num_classes=len(PARSING_CLASSES), width=16,
                      name="face_parser"):
    """Small U-Net-style face parser S.

    Two stride-2 stages down to S/4, a dilated bottleneck, nearest-neighbour upsampling with skip
    connections, 1×1 conv to class logits. ReLU, no normalisation.

    Parameters
    ----------
    image_size : int
        Side S (divisible by 4).
    num_classes : int
        K (5 for :data:`PARSING_CLASSES`).
    width : int
        Base channel count (16 default; 4 for tests).
    name : str

    Returns
    -------
    keras.Model
        (N, S, S, 3) float images in [0, 255] -> (N, S, S, K) logits (no softmax).
    """
    image_size = int(image_size)
    if image_size <= 0 or image_size % 4:
        raise ValueError(f"image_size must be a positive multiple of 4, got {image_size}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    w = int(width)

    def conv(x, filters, strides=1, dilation=1, name=None):
        return layers.Conv2D(filters, 3, strides=strides, padding="same", dilation_rate=dilation,
                             activation="relu", name=name)(x)

    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(image)
    s1 = conv(conv(x, w, name="e1a"), w, name="e1b")
    x = conv(s1, 2 * w, strides=2, name="e2_down")
    s2 = conv(x, 2 * w, name="e2")
    x = conv(s2, 4 * w, strides=2, name="e3_down")
    x = conv(x, 4 * w, dilation=2, name="bottleneck_d2")
    x = conv(x, 4 * w, dilation=4, name="bottleneck_d4")
    x = layers.UpSampling2D(2, name="up1")(x)
    x = layers.Concatenate(name="skip2")([x, s2])
    x = conv(x, 2 * w, name="d1")
    x = layers.UpSampling2D(2, name="up2")(x)
    x = layers.Concatenate(name="skip1")([x, s1])
    x = conv(x, w, name="d2")
    logits = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(image, logits, name=name)


def _class_pixel_weights(labels, num_classes):
    counts = np.bincount(labels.reshape(-1), minlength=num_classes).astype(np.float64)
    freq = counts / max(counts.sum(), 1.0)
    weights = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
    weights /= max((weights * freq).sum(), 1e-12)  # mean pixel weight 1
    return weights.astype(np.float32)


def train_face_parser(parser, images, landmarks, epochs=10, batch_size=16, learning_rate=1e-3,
                      augment=True, balance_classes=True, seed=0, callbacks=None, verbose=0):
    """Train the default parser on landmark-derived labels (see the module docstring for limits).

    Each epoch draws a fresh random similarity transform per face (when ``augment``), warps the
    image and its landmarks, and makes the labels with :func:`parsing_labels_from_landmarks`.

    Parameters
    ----------
    parser : keras.Model
        From :func:`build_face_parser` (logits output); compiled here with Adam.
    images : (N, S, S, 3) uint8/float array in [0, 255]
        Aligned, un-occluded faces.
    landmarks : (N, 5, 2) array
        Their landmarks in pixels (template order).
    epochs, batch_size : int
    learning_rate : float
    augment : bool
        Random rotation ±15°, scale 0.9–1.1, shift ±8 %, flip.
    balance_classes : bool
        Weight pixels by ``1/sqrt(class frequency)`` (eyes/mouth are small).
    seed : int
        Seed of the augmentation and of the shuffling.
    callbacks : list, optional
        Keras callbacks passed to ``fit``.
    verbose : int
        Passed to ``fit`` (0: silent, library code does not print by default).

    Returns
    -------
    dict
        ``{"loss": [...], "pixel_accuracy": [...]}`` per epoch (on the training batches).
    """
    images = np.asarray(images)
    landmarks = np.asarray(landmarks, np.float64)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, S, S, 3), got shape {images.shape}")
    if landmarks.shape != (images.shape[0], 5, 2):
        raise ValueError(f"landmarks must be (N, 5, 2) matching images, got {landmarks.shape}")
    size = images.shape[1]
    num_classes = parser.output_shape[-1]
    rng = np.random.default_rng(seed)
    parser.compile(optimizer=keras.optimizers.Adam(learning_rate),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   weighted_metrics=[])
    history = {"loss": [], "pixel_accuracy": []}
    for epoch in range(int(epochs)):
        if augment:
            pairs = [augment_face_and_landmarks(img, pts, rng) for img, pts in zip(images, landmarks)]
            batch_images = np.stack([p[0] for p in pairs]).astype(np.float32)
            batch_points = np.stack([p[1] for p in pairs])
        else:
            batch_images, batch_points = images.astype(np.float32), landmarks
        labels = parsing_labels_from_landmarks(batch_points, size)
        if balance_classes:
            weights = _class_pixel_weights(labels, num_classes)[labels]
        else:
            weights = np.ones(labels.shape, np.float32)
        result = parser.fit(batch_images, labels.astype(np.int32), sample_weight=weights,
                            batch_size=batch_size, epochs=1, shuffle=True, verbose=verbose,
                            callbacks=callbacks)
        history["loss"].append(float(result.history["loss"][-1]))
        pred = predict_parsing(parser, batch_images, batch_size=batch_size)
        history["pixel_accuracy"].append(float(np.mean(pred == labels)))
        log.info("face parser epoch %d: loss %.4f pixel acc %.3f", epoch + 1,
                 history["loss"][-1], history["pixel_accuracy"][-1])
    return history


def predict_parsing(parser, images, batch_size=32):
    """Per-pixel class labels ``argmax S(images)``: (N, S, S) uint8."""
    logits = parser.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=-1).astype(np.uint8)


def parsing_mean_iou(predicted, labels, num_classes=len(PARSING_CLASSES)):
    """Mean intersection-over-union over the classes present in either map.

    Parameters
    ----------
    predicted, labels : (N, S, S) or (S, S) int arrays

    Returns
    -------
    (mean_iou, per_class) : float, (K,) float array (NaN for classes absent from both).
    """
    predicted = np.asarray(predicted).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    ious = np.full(num_classes, np.nan)
    for k in range(num_classes):
        inter = np.sum((predicted == k) & (labels == k))
        union = np.sum((predicted == k) | (labels == k))
        if union:
            ious[k] = inter / union
    return float(np.nanmean(ious)), ious
