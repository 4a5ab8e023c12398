"""MegaFace-style identification: rank-1 against a gallery plus many distractors, in chunks.

Scores are cosine similarities. Distractors are consumed in chunks (an array, or any iterable of
``(n, D)`` arrays, e.g. embeddings streamed from disk), so memory is ``probes x chunk`` -- never a
``N x N`` matrix, even with a million distractors.

Ties are failures: a probe is identified only if its true match scores **strictly** higher than
every distractor (and every wrong gallery entry).
"""

import numpy as np

from occface.evaluation.similarity import l2_normalize

__all__ = ["max_similarity", "rank1_identification", "megaface_rank1"]


def _chunks(feats, chunk_size):
    if isinstance(feats, np.ndarray) or (hasattr(feats, "shape") and hasattr(feats, "__getitem__")):
        feats = np.asarray(feats)
        if feats.ndim != 2:
            raise ValueError(f"features must be (N, D); got {feats.shape}")
        for s in range(0, feats.shape[0], chunk_size):
            yield feats[s:s + chunk_size]
    else:
        for chunk in feats:
            chunk = np.asarray(chunk)
            if chunk.ndim != 2:
                raise ValueError(f"feature chunks must be (n, D); got {chunk.shape}")
            yield chunk


def max_similarity(queries, gallery, chunk_size=65536, exclude=None):
    """Highest cosine similarity of each query over a (possibly streamed) gallery.

    Parameters
    ----------
    queries : array_like, shape (Q, D)
    gallery : array_like (M, D) or iterable of (m, D) arrays
    chunk_size : int
        Gallery rows per matrix product (memory ``Q x chunk_size`` floats).
    exclude : callable, optional
        ``exclude(offset, n) -> bool array (Q, n)`` of entries to ignore (e.g. same-label rows).

    Returns
    -------
    best : np.ndarray, float32, shape (Q,)
        ``-inf`` for a query with no (non-excluded) gallery entry.
    argbest : np.ndarray, int64, shape (Q,)
        Row index of the best entry in the concatenated gallery (``-1`` if none).
    count : int
        Gallery rows seen.
    """
    q = l2_normalize(queries)
    if q.ndim != 2:
        raise ValueError(f"queries must be (Q, D); got {q.shape}")
    best = np.full(q.shape[0], -np.inf, dtype=np.float32)
    argbest = np.full(q.shape[0], -1, dtype=np.int64)
    offset = 0
    for chunk in _chunks(gallery, chunk_size):
        if chunk.shape[1] != q.shape[1]:
            raise ValueError(f"gallery dimension {chunk.shape[1]} != query dimension {q.shape[1]}")
        if chunk.shape[0] == 0:
            continue
        sims = q @ l2_normalize(chunk).T
        if exclude is not None:
            sims[exclude(offset, chunk.shape[0])] = -np.inf
        idx = np.argmax(sims, axis=1)
        val = sims[np.arange(q.shape[0]), idx]
        better = val > best  # strict: the earliest of equal maxima is kept
        best[better] = val[better]
        argbest[better] = idx[better] + offset
        offset += chunk.shape[0]
    return best, argbest, offset


def rank1_identification(probe_feats, probe_labels, gallery_feats, gallery_labels,
                         distractor_feats=None, chunk_size=65536):
    """Closed-set rank-1 identification with optional distractors.

    A probe is correct when its best-scoring gallery entry of the **same** label scores strictly
    higher than every gallery entry of another label and every distractor.

    Parameters
    ----------
    probe_feats : array_like, shape (Q, D)
    probe_labels : array_like, shape (Q,)
    gallery_feats : array_like, shape (G, D)
    gallery_labels : array_like, shape (G,)
    distractor_feats : array_like (M, D) or iterable of (m, D) arrays, optional
        Faces of nobody in the probe set (MegaFace's distractors).
    chunk_size : int

    Returns
    -------
    dict
        ``rank1`` (fraction), ``correct`` (bool (Q,)), ``n_probes``, ``n_gallery``,
        ``n_distractors``.
    """
    probe_labels = np.asarray(probe_labels)
    gallery_labels = np.asarray(gallery_labels)
    gallery_feats = np.asarray(gallery_feats)
    if len(probe_labels) != len(probe_feats) or len(gallery_labels) != len(gallery_feats):
        raise ValueError("one label per probe and per gallery feature is required")
    if not np.isin(probe_labels, gallery_labels).all():
        raise ValueError("some probe labels have no gallery entry (closed-set identification)")
    same = lambda off, n: probe_labels[:, None] != gallery_labels[None, off:off + n]  # noqa: E731
    other = lambda off, n: probe_labels[:, None] == gallery_labels[None, off:off + n]  # noqa: E731
    true_best, _, _ = max_similarity(probe_feats, gallery_feats, chunk_size, exclude=same)
    wrong_best, _, _ = max_similarity(probe_feats, gallery_feats, chunk_size, exclude=other)
    n_d = 0
    if distractor_feats is not None:
        d_best, _, n_d = max_similarity(probe_feats, distractor_feats, chunk_size)
        wrong_best = np.maximum(wrong_best, d_best)
    correct = true_best > wrong_best
    return {"rank1": float(np.mean(correct)), "correct": correct, "n_probes": int(correct.size),
            "n_gallery": int(len(gallery_labels)), "n_distractors": int(n_d)}


def megaface_rank1(probe_feats, probe_labels, distractor_feats, chunk_size=65536,
                   gallery_feats=None):
    """MegaFace challenge-1 rank-1 identification rate.

    For every identity of the probe set (FaceScrub in MegaFace) and every ordered pair ``(p, g)``
    of two different images of that identity, ``g`` is put into the distractor set and ``p`` is
    the probe; the pair is a success when ``g`` ranks first, i.e. ``s(p, g)`` is strictly higher
    than ``s(p, d)`` for every distractor ``d``. The rate is the fraction of successful pairs.

    The distractor maximum of each probe is computed once, in chunks; the per-identity products
    are ``n_id x n_id``.

    Parameters
    ----------
    probe_feats : array_like, shape (Q, D)
    probe_labels : array_like, shape (Q,)
    distractor_feats : array_like (M, D) or iterable of (m, D) arrays
    chunk_size : int
    gallery_feats : array_like, shape (Q, D), optional
        Features used when an image plays the gallery role ``g`` (row-aligned with the probes);
        defaults to ``probe_feats``. For "occluded probe vs clean gallery" pass the occluded
        embeddings as ``probe_feats`` and the clean ones here.

    Returns
    -------
    dict
        ``rank1``, ``n_pairs`` (ordered probe/gallery pairs), ``n_successes``, ``n_distractors``,
        ``per_probe_success`` (fraction of each probe's pairs that succeed, (Q,); NaN for a probe
        whose identity has a single image).
    """
    probe_feats = l2_normalize(probe_feats)
    gallery_feats = probe_feats if gallery_feats is None else l2_normalize(gallery_feats)
    labels = np.asarray(probe_labels)
    if labels.shape[0] != probe_feats.shape[0] or gallery_feats.shape != probe_feats.shape:
        raise ValueError("one label per probe feature (and gallery_feats row-aligned with the "
                         "probes) is required")
    d_best, _, n_d = max_similarity(probe_feats, distractor_feats, chunk_size)
    per_probe = np.full(labels.shape[0], np.nan)
    n_pairs = n_success = 0
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if idx.size < 2:
            continue
        sims = probe_feats[idx] @ gallery_feats[idx].T
        wins = sims > d_best[idx][:, None]
        np.fill_diagonal(wins, False)
        k = idx.size - 1
        per_probe[idx] = wins.sum(axis=1) / k
        n_pairs += idx.size * k
        n_success += int(wins.sum())
    if n_pairs == 0:
        raise ValueError("no identity has two probe images")
    return {"rank1": n_success / n_pairs, "n_pairs": n_pairs, "n_successes": n_success,
            "n_distractors": int(n_d), "per_probe_success": per_probe}
