"""Occluded-pair protocols: reproducible synthetic occlusion of one or both images of each pair.

Occlusion comes from :func:`occface.data.occlude`. Every image gets its own random generator
seeded from ``(seed, hash(key))`` where ``key`` names the image (its path, or its index in a
``.bin`` set), so an image is occluded the same way whatever order it is loaded in, in whichever
pairs it appears, and across runs -- "clean vs occluded" tables compare like with like.
"""

import hashlib

import numpy as np

from occface.choices import OCCLUSION_CONDITIONS

__all__ = ["OCCLUSION_KINDS", "image_rng", "occlude_face", "pair_occlusion"]

#: Occlusion kinds the tools accept (``"none"`` = clean): the evaluation conditions of
#: :data:`occface.choices.OCCLUSION_CONDITIONS`; ``occface.data.occlude`` implements the kinds.
OCCLUSION_KINDS = OCCLUSION_CONDITIONS


def image_rng(seed, key):
    """The random generator used to occlude image ``key`` under ``seed`` (stable across runs)."""
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest, "little")])


def occlude_face(image, landmarks, kind, seed=0, key=""):
    """Occlude an aligned face reproducibly.

    Parameters
    ----------
    image : np.ndarray, uint8, shape (H, W, 3)
        RGB face in [0, 255].
    landmarks : np.ndarray, shape (5, 2)
        Its five landmarks (for aligned faces: ``occface.data.template_landmarks``).
    kind : str
        ``"none"`` returns the image unchanged with an empty mask; any other kind goes to
        ``occface.data.occlude``.
    seed : int
    key : str or int
        Name of the image (path or index), mixed into the seed.

    Returns
    -------
    image : np.ndarray, uint8, shape (H, W, 3)
    mask : np.ndarray, uint8, shape (H, W), 1 = occluded
    """
    if kind in (None, "none"):
        return image, np.zeros(image.shape[:2], dtype=np.uint8)
    from occface.data import occlude
    out, mask = occlude(image, landmarks, kind, image_rng(seed, key))
    return np.asarray(out), np.asarray(mask, dtype=np.uint8)


def pair_occlusion(n_pairs, occlude="both"):
    """Which image of each pair is occluded.

    Parameters
    ----------
    n_pairs : int
    occlude : {"both", "one", "none"}
        ``"one"`` occludes the **second** image of every pair (the first plays the clean gallery
        image, the second the occluded probe, as in the papers' "clean vs occluded" setting).

    Returns
    -------
    occ_a, occ_b : np.ndarray of bool, shape (n_pairs,)
    """
    if occlude not in ("both", "one", "none"):
        raise ValueError(f"occlude must be 'both', 'one' or 'none', got {occlude!r}")
    occ_b = np.full(n_pairs, occlude != "none")
    occ_a = np.full(n_pairs, occlude == "both")
    return occ_a, occ_b
