"""Comparing embeddings: L2 normalisation, cosine pair scores, feature robustness (LCD Eq. 8).

A *score* is a similarity: higher means "more likely the same person" (cosine similarity of
L2-normalised embeddings, :func:`pair_scores`). What is done with the scores lives in
:mod:`~occface.evaluation.verification` (k-fold accuracy) and :mod:`~occface.evaluation.roc`
(ROC, TAR at FAR).
"""

import numpy as np

__all__ = ["l2_normalize", "pair_scores", "feature_robustness"]


def l2_normalize(x, axis=-1, eps=1e-12):
    """L2-normalise ``x`` along ``axis`` (zero vectors stay zero).

    Parameters
    ----------
    x : array_like, shape (..., D)
    """
    x = np.asarray(x, dtype=np.float32)
    norm = np.sqrt(np.sum(np.square(x), axis=axis, keepdims=True))
    return x / np.maximum(norm, eps)


def pair_scores(emb_a, emb_b, normalize=True, chunk_size=262144):
    """Cosine similarity of each row of ``emb_a`` with the same row of ``emb_b``.

    Parameters
    ----------
    emb_a, emb_b : array_like, shape (P, D)
        Embeddings of the first and second image of each pair.
    normalize : bool
        L2-normalise the rows first (cosine similarity); ``False`` gives the plain dot product.

    Returns
    -------
    np.ndarray, shape (P,), float32
    """
    emb_a = np.asarray(emb_a, dtype=np.float32)
    emb_b = np.asarray(emb_b, dtype=np.float32)
    if emb_a.shape != emb_b.shape or emb_a.ndim != 2:
        raise ValueError(f"pair embeddings must both be (P, D); got {emb_a.shape} and "
                         f"{emb_b.shape}")
    out = np.empty(emb_a.shape[0], dtype=np.float32)
    for s in range(0, emb_a.shape[0], chunk_size):
        a, b = emb_a[s:s + chunk_size], emb_b[s:s + chunk_size]
        if normalize:
            a, b = l2_normalize(a), l2_normalize(b)
        out[s:s + chunk_size] = np.einsum("ij,ij->i", a, b)
    return out


def feature_robustness(clean, occluded, normalize=True):
    """Feature robustness of a recognizer to occlusion (LCD paper, Eq. 8).

    The mean squared Euclidean distance between the embedding of each clean face and that of its
    occluded version:

        R = 1/N * sum_i || f(x_i) - f(x~_i) ||_2^2

    Lower is more robust. With ``normalize=True`` (default) embeddings are L2-normalised first, so
    ``R = 2 - 2 * mean cosine`` lies in ``[0, 4]`` and compares across models of different scales.

    Parameters
    ----------
    clean, occluded : array_like, shape (N, D)
        Embeddings of the same N faces without and with occlusion, row-aligned.
    normalize : bool

    Returns
    -------
    float
    """
    clean = np.asarray(clean, dtype=np.float64)
    occluded = np.asarray(occluded, dtype=np.float64)
    if clean.shape != occluded.shape or clean.ndim != 2 or clean.shape[0] == 0:
        raise ValueError(f"clean and occluded embeddings must both be (N, D) with N > 0; got "
                         f"{clean.shape} and {occluded.shape}")
    if normalize:
        clean, occluded = l2_normalize(clean).astype(np.float64), l2_normalize(occluded).astype(
            np.float64)
    return float(np.mean(np.sum(np.square(clean - occluded), axis=1)))
