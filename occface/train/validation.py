"""Periodic validation on a face-verification pairs protocol (clean and occluded).

:class:`PairsValidator` holds one or more named sets of image pairs (e.g. the LFW folds not used
for training, clean and with synthetic occlusions), embeds them with the model being trained and
returns the k-fold verification accuracy of each (:func:`occface.evaluation.verification_accuracy`).
:func:`lfw_validation_sets` loads such sets from ``pairs.txt`` and an aligned image tree.
"""

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PairSet:
    """Images of the two sides of each pair and the protocol's labels.

    Attributes
    ----------
    images_a, images_b : np.ndarray uint8, shape (P, H, W, 3)
        RGB in [0, 255].
    issame : np.ndarray bool, shape (P,)
    folds : np.ndarray int, shape (P,)
        Fold of each pair (thresholds are chosen on the other folds).
    """

    images_a: np.ndarray
    images_b: np.ndarray
    issame: np.ndarray
    folds: np.ndarray

    def __post_init__(self):
        n = len(self.issame)
        if len(self.images_a) != n or len(self.images_b) != n or len(self.folds) != n:
            raise ValueError("PairSet: images_a, images_b, issame and folds must have one entry "
                             "per pair")
        if n == 0:
            raise ValueError("PairSet: no pairs")
        if len(np.unique(self.folds)) < 2:
            raise ValueError("PairSet: need at least two folds (thresholds are chosen out of fold)")


class PairsValidator:
    """Verification accuracy of a model on named pair sets.

    Parameters
    ----------
    sets : dict of str -> PairSet
        E.g. ``{"clean": ..., "occluded": ...}``.
    batch_size : int
    flip : bool
        Flip-test embeddings (``f(x) + f(mirror x)``).
    """

    def __init__(self, sets, batch_size=64, flip=False):
        if not sets:
            raise ValueError("PairsValidator needs at least one pair set")
        self.sets = dict(sets)
        self.batch_size = int(batch_size)
        self.flip = bool(flip)
        self._wrapped = None

    def __call__(self, model):
        """Return ``{"<name>_acc": mean accuracy, "<name>_std": std}`` for every set."""
        from occface.evaluation import (as_embedding_model, embed_images, pair_scores,
                                        verification_accuracy)
        if self._wrapped is None or self._wrapped[0] is not model:
            # Wrap once: the traced inference function is reused at every validation.
            self._wrapped = (model, as_embedding_model(model))
        embedder = self._wrapped[1]
        out = {}
        for name, s in self.sets.items():
            images = np.concatenate([s.images_a, s.images_b], axis=0)
            emb = embed_images(embedder, images, batch_size=self.batch_size, flip=self.flip)
            n = len(s.issame)
            scores = pair_scores(emb[:n], emb[n:])
            result = verification_accuracy(scores, s.issame, folds=s.folds)
            out[f"{name}_acc"] = float(result.accuracy)
            out[f"{name}_std"] = float(result.std)
        return out


def lfw_validation_sets(pairs_path, image_root, folds, image_size, occlusions=("none",),
                        seed=0, ext=None):
    """Load LFW pairs of ``folds`` (0-based) as :class:`PairSet` s, clean and occluded.

    Parameters
    ----------
    pairs_path : path-like
        ``pairs.txt``.
    image_root : path-like
        Aligned image tree ``<root>/Name/Name_0001.<ext>`` (or an LFW dir with
        ``lfw-deepfunneled/``); images are resized to ``image_size``.
    folds : iterable of int
        One fold (the held-out protocol's validation fold) is split into 5 interleaved sub-folds
        of its pairs (:func:`occface.evaluation.verification.interleaved_folds`), so that the
        accuracy's thresholds are still chosen out of fold.
    image_size : int
    occlusions : iterable of str
        ``"none"`` for the clean set, or an occlusion kind of
        :data:`occface.evaluation.OCCLUSION_KINDS` applied (by
        :func:`occface.evaluation.occlude_face`, at the aligned template landmarks) to the
        *second* image of every pair: the clean-gallery / occluded-probe protocol. Each becomes a
        set named ``clean`` / the kind.
    seed : int
        Seed of the occlusion placement (each image's occlusion depends on it and the image
        path, so it is the same at every validation).
    ext : str, optional
        Image extension when not ``.jpg``; auto-detected (``.jpg``/``.png``) when None.

    Returns
    -------
    dict of str -> PairSet
    """
    import pathlib

    from occface.data import read_lfw_pairs
    from occface.evaluation.verification import interleaved_folds

    pairs = read_lfw_pairs(pairs_path)
    folds = sorted(set(int(f) for f in folds))
    for f in folds:
        if not 0 <= f < pairs.num_folds:
            raise ValueError(f"validation fold {f} out of range 0..{pairs.num_folds - 1}")
    sub = pairs.subset(pairs.fold_indices(folds))
    fold_ids = (interleaved_folds(len(sub.issame)) if len(folds) == 1
                else np.asarray(sub.folds))
    if ext is None:
        a, _ = sub.image_paths(image_root)
        ext = None if pathlib.Path(a[0]).is_file() else ".png"
    paths_a, paths_b = sub.image_paths(image_root, ext=ext)
    cache = {}

    def load(path):
        if path not in cache:
            cache[path] = _load_face(path, image_size)
        return cache[path]

    images_a = np.stack([load(p) for p in paths_a])
    images_b = np.stack([load(p) for p in paths_b])
    out = {}
    for kind in occlusions:
        if kind in ("none", "clean", ""):
            out["clean"] = PairSet(images_a, images_b, sub.issame, fold_ids)
            continue
        from occface.data import template_landmarks
        from occface.evaluation import occlude_face
        landmarks = template_landmarks(image_size)
        occluded_b = np.stack([occlude_face(img, landmarks, kind, seed=seed, key=path)[0]
                               for img, path in zip(images_b, paths_b)])
        out[kind] = PairSet(images_a, occluded_b.astype(np.uint8), sub.issame, fold_ids)
    return out


def _load_face(path, image_size):
    """An aligned face file as uint8 RGB ``(S, S, 3)``."""
    import os

    import cv2
    if not os.path.isfile(path):
        raise FileNotFoundError(f"validation image not found: {path}")
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode validation image {path}")
    if bgr.shape[:2] != (image_size, image_size):
        interp = cv2.INTER_AREA if bgr.shape[0] > image_size else cv2.INTER_LINEAR
        bgr = cv2.resize(bgr, (image_size, image_size), interpolation=interp)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
