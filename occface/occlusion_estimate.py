"""Where is a face hidden? A small segmentation net for occlusion masks on aligned faces.

Real photos come without occlusion masks, yet the inpainting cascade needs one and the verify tool
should say when a face is covered. :func:`build_occlusion_segmenter` is a compact encoder–decoder
(≈160 k parameters at the default width) that maps an aligned face ``(N, S, S, 3)`` in [0, 255] to per-pixel occlusion
probabilities ``(N, S, S, 1)``. It is trained on synthetic occlusions made by
:func:`occface.data.occlude` (face-mask templates, sunglasses bands, blocks, half-face covers) on
identity-disjoint LFW faces (:func:`train_occlusion_segmenter`), and checked on the real masked
faces of RMFRD (``benchmarks/occlusion_estimate.py``).

:class:`OcclusionEstimator` turns the probability map into a verdict: the occluded fraction of the
face region and a coarse kind (``mask``/``lower``, ``sunglasses``/``upper``, ``left``, ``right``,
``block``) from where the occluded pixels lie.
"""

import pathlib

import numpy as np

from occface.paths import ASSETS_DIR

DEFAULT_WEIGHTS = ASSETS_DIR / "occlusion_segmenter" / "segmenter.keras"


def build_occlusion_segmenter(image_size=56, width=12, name="occlusion_segmenter"):
    """A small U-Net: aligned faces → occlusion probability per pixel.

    Parameters
    ----------
    image_size : int
        Side of the square aligned input (divisible by 8).
    width : int
        Channels of the first level (doubles at each of the 3 downsamplings).

    Returns
    -------
    keras.Model
        ``(N, S, S, 3)`` float in [0, 255] → ``(N, S, S, 1)`` float in (0, 1).
    """
    import keras
    from keras import layers

    if image_size % 8:
        raise ValueError(f"image_size must be divisible by 8, got {image_size}")
    inp = keras.Input((image_size, image_size, 3), name="faces")
    x = layers.Rescaling(1 / 127.5, offset=-1)(inp)
    skips = []
    for level in range(3):
        ch = width * 2 ** level
        x = layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(width * 8, 3, padding="same", activation="relu", dilation_rate=2)(x)
    for level in reversed(range(3)):
        ch = width * 2 ** level
        x = layers.UpSampling2D()(x)
        x = layers.Concatenate()([x, skips[level]])
        x = layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid", name="occlusion")(x)
    return keras.Model(inp, out, name=name)


def face_region(size=112):
    """Boolean ``(size, size)`` map of the face area of an aligned crop (an ellipse around the
    ArcFace template), where occlusion is counted."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size * 112.0
    return (((xx - 56.0) / 40.0) ** 2 + ((yy - 66.0) / 52.0) ** 2) <= 1.0


def describe_mask(mask, threshold=0.05):
    """Occluded fraction and coarse kind from a binary occlusion mask on an aligned face.

    Parameters
    ----------
    mask : np.ndarray, shape (S, S), bool or {0, 1}
        1 = occluded.
    threshold : float
        Fraction of the face region above which the face counts as occluded.

    Returns
    -------
    dict
        ``occluded`` (bool), ``fraction`` (of the face region), ``kind`` (``None`` if not
        occluded; else ``"lower"`` — e.g. a face mask —, ``"upper"`` — e.g. sunglasses —,
        ``"left"``, ``"right"``, or ``"block"`` when no half dominates), and the fractions per
        half: ``upper``, ``lower``, ``left``, ``right``.
    """
    mask = np.asarray(mask).astype(bool)
    size = mask.shape[0]
    region = face_region(size)
    occ = mask & region
    fraction = float(occ.sum() / region.sum())
    eye_line = int(round(size * 0.55))   # between eyes (y≈52/112) and nose tip (y≈72/112)
    mid = size // 2
    halves = {
        "upper": occ[:eye_line].sum() / max(region[:eye_line].sum(), 1),
        "lower": occ[eye_line:].sum() / max(region[eye_line:].sum(), 1),
        "left": occ[:, :mid].sum() / max(region[:, :mid].sum(), 1),
        "right": occ[:, mid:].sum() / max(region[:, mid:].sum(), 1),
    }
    halves = {k: float(v) for k, v in halves.items()}
    kind = None
    if fraction >= threshold:
        vertical = max(halves["upper"], halves["lower"]) / max(min(halves["upper"],
                                                                   halves["lower"]), 1e-6)
        horizontal = max(halves["left"], halves["right"]) / max(min(halves["left"],
                                                                    halves["right"]), 1e-6)
        if max(vertical, horizontal) < 2.0:
            kind = "block"
        elif vertical >= horizontal:
            kind = "upper" if halves["upper"] > halves["lower"] else "lower"
        else:
            kind = "left" if halves["left"] > halves["right"] else "right"
    return {"occluded": fraction >= threshold, "fraction": fraction, "kind": kind, **halves}


class OcclusionEstimator:
    """Callable: aligned RGB face ``(S, S, 3)`` uint8 → occlusion verdict and mask.

    Parameters
    ----------
    model : keras.Model or str or path
        A segmenter from :func:`build_occlusion_segmenter` or the path of its ``.keras`` file.
    threshold : float
        Occluded fraction of the face region above which the face counts as occluded.
    """

    def __init__(self, model=DEFAULT_WEIGHTS, threshold=0.05):
        import keras
        if isinstance(model, (str, pathlib.Path)):
            path = pathlib.Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"occlusion segmenter weights not found: {path}")
            model = keras.saving.load_model(str(path), compile=False)
        self.model = model
        self.size = int(model.input_shape[1])
        self.threshold = threshold

    def probabilities(self, faces):
        """Occlusion probabilities ``(N, s, s)`` float32 for aligned faces ``(N, s, s, 3)``
        (computed at the segmenter's size and resized back to ``s``)."""
        import cv2
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        side = faces.shape[1]
        small = faces
        if side != self.size:
            small = np.stack([cv2.resize(f, (self.size, self.size),
                                         interpolation=cv2.INTER_AREA) for f in faces])
        prob = np.asarray(self.model.predict_on_batch(small.astype(np.float32)))[..., 0]
        if side != self.size:
            prob = np.stack([cv2.resize(p, (side, side), interpolation=cv2.INTER_LINEAR)
                             for p in prob])
        return prob

    def masks(self, faces):
        """Binary occlusion masks ``(N, s, s)`` uint8 (1 = occluded) for aligned faces."""
        return (self.probabilities(faces) > 0.5).astype(np.uint8)

    def estimate(self, face):
        """``(verdict dict as in :func:`describe_mask`, mask (S, S) uint8)`` for one face."""
        mask = self.masks(face)[0]
        return describe_mask(mask, self.threshold), mask

    def __call__(self, face):
        """The JSON-friendly verdict of :func:`describe_mask` for one aligned face."""
        return self.estimate(face)[0]


def default_occlusion_estimator():
    """The shipped segmenter, or ``None`` (with no error) when its weights are not installed."""
    if not DEFAULT_WEIGHTS.is_file():
        return None
    return OcclusionEstimator(DEFAULT_WEIGHTS)


def fill_estimated_occlusion(faces, inpaint, estimator, batch_size=64):
    """Fill the occlusion an estimator finds in aligned faces with an inpainter, before embedding.

    The serving path of ``tools/verify.py``: the segmenter's binary mask of each face; a face
    counts as occluded when :func:`describe_mask` says so at the estimator's ``threshold`` (only
    then does :class:`occface.verify.FaceVerifier` hand a mask on), and only those faces are
    filled, with their estimated mask; the others are returned as they are.

    Parameters
    ----------
    faces : array_like, shape (N, S, S, 3), uint8
        Aligned RGB faces.
    inpaint : callable
        ``inpaint(images uint8 (n, S, S, 3), masks float32 (n, S, S, 1), 1 = hole) -> (n, S, S,
        3)`` (e.g. :func:`occface.inpainting.classical.classical_inpaint` or an ``inpaint``
        SavedModel signature wrapped to numpy). Called only on the occluded faces, in batches.
    estimator : OcclusionEstimator or alike
        Has ``masks(faces) -> (n, S, S)`` {0, 1} and a ``threshold`` (default 0.05).
    batch_size : int

    Returns
    -------
    filled : np.ndarray, shape (N, S, S, 3), uint8
    masks : np.ndarray, shape (N, S, S), uint8
        The estimated masks of every face (also of those not counted occluded).
    occluded : np.ndarray of bool, shape (N,)
        Which faces were counted occluded (and filled).
    fractions : np.ndarray of float, shape (N,)
        Occluded fraction of the face region (:func:`describe_mask`) of each face.
    """
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (N, S, S, 3), got shape {faces.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    faces = faces if faces.dtype == np.uint8 else \
        np.clip(np.rint(faces), 0, 255).astype(np.uint8)
    threshold = getattr(estimator, "threshold", 0.05)
    n = faces.shape[0]
    masks = np.zeros(faces.shape[:3], np.uint8)
    for s in range(0, n, batch_size):
        masks[s:s + batch_size] = np.asarray(estimator.masks(faces[s:s + batch_size])) > 0
    verdicts = [describe_mask(m, threshold) for m in masks]
    occluded = np.array([v["occluded"] for v in verdicts], bool)
    fractions = np.array([v["fraction"] for v in verdicts], np.float64)
    filled = faces.copy()
    idx = np.flatnonzero(occluded)
    for s in range(0, idx.size, batch_size):
        part = idx[s:s + batch_size]
        hole = masks[part, ..., None].astype(np.float32)
        out = np.asarray(inpaint(faces[part], hole))
        if out.shape != faces[part].shape:
            raise ValueError(f"inpaint returned shape {out.shape}, expected {faces[part].shape}")
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8) if out.dtype != np.uint8 else out
        filled[part] = np.where(hole > 0, out, faces[part])
    return filled, masks, occluded, fractions


def train_occlusion_segmenter(source, steps=1500, batch_size=32, image_size=56, width=12,
                              identities=None, kinds=("mask", "sunglasses", "block", "upper",
                                                      "lower", "left", "right"),
                              occlusion_prob=0.8, learning_rate=2e-3, seed=0, callbacks=None):
    """Train :func:`build_occlusion_segmenter` on synthetic occlusions of real aligned faces.

    Parameters
    ----------
    source : str or path
        Aligned faces for :func:`occface.data.training_dataset` (e.g. the LFW training folds
        prepared by ``tools/prepare_dataset.py``).
    steps, batch_size : int
    image_size, width : int
        Segmenter input side and first-level width.
    identities : list of str, optional
        Restrict to these identities (keep test identities out).
    kinds : sequence of str
        Occlusion kinds of :func:`occface.data.occlude` to synthesise; a face stays clean with
        probability ``1 - occlusion_prob`` so the net also learns "nothing is hidden".
    callbacks : list, optional
        Keras callbacks for ``fit`` (e.g. a progress logger).

    Returns
    -------
    model : keras.Model
    history : dict
        Loss and pixel accuracy per epoch of ``steps // 10`` steps.
    """
    import keras
    import tensorflow as tf
    from occface.data import training_dataset

    keras.utils.set_random_seed(seed)
    dataset, _ = training_dataset(
        source, batch_size, image_size=image_size, augment=True, identities=identities,
        occlusion={"kinds": list(kinds), "prob": occlusion_prob}, seed=seed, return_masks=True)
    dataset = dataset.map(lambda images, labels, masks: (images, masks),
                          num_parallel_calls=tf.data.AUTOTUNE)
    model = build_occlusion_segmenter(image_size=image_size, width=width)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="pixel_accuracy"),
                           keras.metrics.BinaryIoU(target_class_ids=[1], name="iou")])
    epochs = 10
    history = model.fit(dataset, steps_per_epoch=max(1, steps // epochs), epochs=epochs,
                        verbose=0, callbacks=callbacks or [])
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}
