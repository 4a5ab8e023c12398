"""Verification accuracy, the LFW protocol: exact threshold search and k-fold accuracy.

Conventions (shared with :mod:`~occface.evaluation.roc`)
--------------------------------------------------------
* A *score* is a similarity: higher means "more likely the same person" (cosine similarity of
  L2-normalised embeddings, see :func:`occface.evaluation.similarity.pair_scores`).
* A pair is *accepted* ("same") at threshold ``t`` when ``score >= t``.
* ``issame`` is a boolean array, ``True`` for genuine (same-identity) pairs.
"""

import dataclasses

import numpy as np

__all__ = ["check_scores", "fold_ids", "interleaved_folds", "best_threshold", "VerificationResult",
           "verification_accuracy"]


def check_scores(scores, issame, need_both=True):
    """Validate a score set: the arrays as ``float64`` and ``bool``, or a :class:`ValueError`.

    Parameters
    ----------
    scores : array_like, shape (P,)
        Finite similarities.
    issame : array_like of bool (or 0/1), shape (P,)
    need_both : bool
        Also require at least one genuine and one impostor pair.

    Returns
    -------
    scores : np.ndarray, float64, shape (P,)
    issame : np.ndarray, bool, shape (P,)
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    issame = np.asarray(issame).reshape(-1)
    if scores.shape != issame.shape:
        raise ValueError(f"scores and issame differ in length: {scores.size} vs {issame.size}")
    if issame.dtype != bool:
        if not np.isin(issame, (0, 1)).all():
            raise ValueError("issame must be boolean (or 0/1)")
        issame = issame.astype(bool)
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if need_both:
        if not issame.any():
            raise ValueError("no genuine (issame=True) pairs among the scores")
        if issame.all():
            raise ValueError("no impostor (issame=False) pairs among the scores")
    return scores, issame


def interleaved_folds(n, k=5):
    """Sub-folds of ONE protocol fold: pair ``i`` goes to sub-fold ``i % k``.

    LFW's folds list their genuine pairs, then their impostors, so contiguous sub-folds would hold
    one kind each and out-of-fold thresholds would be meaningless; interleaving gives every
    sub-fold both kinds.

    Parameters
    ----------
    n : int
        Pairs in the fold (``n >= 2``).
    k : int
        Sub-folds wanted; fewer (``n``) when there are fewer pairs.

    Returns
    -------
    np.ndarray, shape (n,), int
    """
    if n < 2:
        raise ValueError(f"cannot split {n} pair(s) into sub-folds")
    return np.arange(n) % min(int(k), n)


def fold_ids(n, folds=10):
    """Fold index of each of ``n`` pairs.

    Parameters
    ----------
    n : int
        Number of pairs.
    folds : int or array_like of int, shape (n,)
        An int ``k`` splits the pairs, in order, into ``k`` contiguous folds as equal as possible
        (the first ``n % k`` folds get one extra pair; this is the LFW ``pairs.txt`` layout and
        sklearn's unshuffled ``KFold``). An array gives the fold of every pair explicitly.

    Returns
    -------
    np.ndarray, shape (n,), int
        Values are ``0 .. n_folds-1``.
    """
    if np.ndim(folds) == 0:
        k = int(folds)
        if k < 2:
            raise ValueError(f"need at least 2 folds, got {k}")
        if n < k:
            raise ValueError(f"cannot split {n} pairs into {k} folds")
        sizes = np.full(k, n // k)
        sizes[: n % k] += 1
        return np.repeat(np.arange(k), sizes)
    ids = np.asarray(folds).reshape(-1)
    if ids.size != n:
        raise ValueError(f"fold array has {ids.size} entries for {n} pairs")
    uniq, ids = np.unique(ids, return_inverse=True)
    if uniq.size < 2:
        raise ValueError("need at least 2 distinct folds")
    return ids


def _candidate_thresholds(scores):
    """Distinct sorted scores and the candidate thresholds between them.

    Candidates are: one below every score (``min - 1``), the midpoints between consecutive distinct
    scores, one above every score (``max + 1``). Candidate ``k`` accepts exactly the distinct
    values ``u[k:]``.
    """
    u = np.unique(scores)
    mids = (u[:-1] + u[1:]) / 2.0
    return u, np.concatenate([[u[0] - 1.0], mids, [u[-1] + 1.0]])


def best_threshold(scores, issame):
    """The threshold maximising verification accuracy on ``scores``.

    Candidates are those of :func:`verification_accuracy`. Among
    candidates with the same (maximal) accuracy the **lowest** threshold is chosen.

    Returns
    -------
    threshold : float
    accuracy : float
        Accuracy of that threshold on ``scores``.
    """
    scores, issame = check_scores(scores, issame, need_both=False)
    if scores.size == 0:
        raise ValueError("no scores")
    u, cands = _candidate_thresholds(scores)
    idx = np.searchsorted(u, scores)
    pos_per = np.bincount(idx, weights=issame, minlength=u.size)
    neg_per = np.bincount(idx, weights=~issame, minlength=u.size)
    # Candidate k accepts distinct values u[k:], rejects u[:k].
    cum_pos = np.concatenate([[0.0], np.cumsum(pos_per)])
    cum_neg = np.concatenate([[0.0], np.cumsum(neg_per)])
    correct = (cum_pos[-1] - cum_pos) + cum_neg
    k = int(np.argmax(correct))  # first maximum = lowest threshold
    return float(cands[k]), float(correct[k] / scores.size)


@dataclasses.dataclass
class VerificationResult:
    """Result of :func:`verification_accuracy`.

    Attributes
    ----------
    accuracy : float
        Mean held-out accuracy over the folds.
    std : float
        Population standard deviation (``ddof=0``) of the per-fold accuracies.
    fold_accuracies : list of float
    thresholds : list of float
        Threshold chosen on the other folds and applied to fold ``i``.
    fold_sizes : list of int
    best_threshold : float
        Threshold maximising accuracy on all pairs (for reference; not used for the accuracy).
    """
    accuracy: float
    std: float
    fold_accuracies: list
    thresholds: list
    fold_sizes: list
    best_threshold: float

    def to_dict(self):
        return dataclasses.asdict(self)

    # Allow result["accuracy"] as well as result.accuracy.
    def __getitem__(self, key):
        return getattr(self, key)


def verification_accuracy(scores, issame, folds=10):
    """The LFW verification protocol: k-fold accuracy with thresholds chosen out of fold.

    For each fold ``i``, the threshold that maximises accuracy on the pairs of all *other* folds is
    applied to fold ``i``; the result is the mean and standard deviation of the held-out accuracies.

    Threshold search is exact (not a grid): candidates are the midpoints between consecutive
    distinct training scores, plus ``min - 1`` (accept all) and ``max + 1`` (reject all); a pair is
    accepted when ``score >= threshold``. Ties in training accuracy go to the lowest threshold.

    Parameters
    ----------
    scores : array_like, shape (P,)
        Similarity of each pair (higher = more similar).
    issame : array_like of bool, shape (P,)
    folds : int or array_like, shape (P,)
        Number of contiguous folds, or the fold of each pair (see :func:`fold_ids`).

    Returns
    -------
    VerificationResult
    """
    scores, issame = check_scores(scores, issame, need_both=False)
    ids = fold_ids(scores.size, folds)
    n_folds = int(ids.max()) + 1
    accs, ths, sizes = [], [], []
    for i in range(n_folds):
        test = ids == i
        th, _ = best_threshold(scores[~test], issame[~test])
        pred = scores[test] >= th
        accs.append(float(np.mean(pred == issame[test])))
        ths.append(th)
        sizes.append(int(test.sum()))
    overall, _ = best_threshold(scores, issame)
    return VerificationResult(accuracy=float(np.mean(accs)), std=float(np.std(accs)),
                              fold_accuracies=accs, thresholds=ths, fold_sizes=sizes,
                              best_threshold=overall)
