"""Verification metrics: k-fold accuracy (LFW protocol), ROC, TAR at FAR, feature robustness.

Conventions used throughout
---------------------------
* A *score* is a similarity: higher means "more likely the same person" (cosine similarity of
  L2-normalised embeddings, see :func:`pair_scores`).
* A pair is *accepted* ("same") at threshold ``t`` when ``score >= t``.
* ``issame`` is a boolean array, ``True`` for genuine (same-identity) pairs.
"""

import dataclasses

import numpy as np

__all__ = [
    "VerificationResult", "Roc", "OperatingPoint", "l2_normalize", "pair_scores",
    "fold_ids", "best_threshold", "verification_accuracy", "roc", "operating_point", "tar_at_far",
    "feature_robustness", "DEFAULT_FARS",
]

#: FAR targets reported by default (the IJB-C table: 1e-6 ... 1e-1).
DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _check_scores(scores, issame, need_both=True):
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
    scores, issame = _check_scores(scores, issame, need_both=False)
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
    scores, issame = _check_scores(scores, issame, need_both=False)
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


class Roc(tuple):
    """ROC curve ``(fpr, tpr, thresholds)``; unpacks like a tuple, plus ``.auc``.

    ``thresholds`` is decreasing: ``+inf`` (accept nothing, point (0, 0)) followed by every distinct
    score; point ``k`` accepts pairs with ``score >= thresholds[k]``.
    """

    def __new__(cls, fpr, tpr, thresholds):
        return super().__new__(cls, (fpr, tpr, thresholds))

    fpr = property(lambda self: self[0])
    tpr = property(lambda self: self[1])
    thresholds = property(lambda self: self[2])

    @property
    def auc(self):
        """Area under the curve (trapezoids; exact for the step curve with ties as diagonals)."""
        fpr, tpr = self[0], self[1]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))

    def sample(self, n=512, log=True, min_fpr=1e-7):
        """At most ``n`` points of the curve for plots/JSON (log-spaced in FPR by default)."""
        fpr, tpr, th = self
        if fpr.size <= n:
            return fpr, tpr, th
        grid = (np.logspace(np.log10(max(min_fpr, fpr[fpr > 0].min())), 0, n) if log
                else np.linspace(0, 1, n))
        idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, fpr.size - 1))
        idx = np.unique(np.concatenate([[0], idx, [fpr.size - 1]]))
        return fpr[idx], tpr[idx], th[idx]


def roc(scores, issame):
    """ROC curve of a verification score set.

    Parameters
    ----------
    scores : array_like, shape (P,)
    issame : array_like of bool, shape (P,)

    Returns
    -------
    Roc
        ``(fpr, tpr, thresholds)``, each shape (U+1,) for U distinct scores; fpr and tpr are
        non-decreasing from (0, 0) to (1, 1).
    """
    scores, issame = _check_scores(scores, issame)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    y = issame[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # Keep the last index of each run of equal scores (ties are accepted together).
    last = np.concatenate([np.nonzero(np.diff(s))[0], [s.size - 1]])
    tpr = np.concatenate([[0.0], tp[last] / tp[-1]])
    fpr = np.concatenate([[0.0], fp[last] / fp[-1]])
    th = np.concatenate([[np.inf], s[last]])
    return Roc(fpr, tpr, th)


@dataclasses.dataclass
class OperatingPoint:
    """One point chosen by :func:`operating_point`.

    Attributes
    ----------
    far_target : float
    tar : float
        True accept rate at ``threshold``.
    far : float
        Achieved false accept rate (``<= far_target``).
    threshold : float
        Pairs with ``score >= threshold`` are accepted; ``inf`` when nothing can be accepted.
    n_neg, n_pos : int
    below_resolution : bool
        ``far_target < 1 / n_neg``: the only admissible FAR is 0, so the number is a
        "no false accepts at all" TAR and is not statistically meaningful at that target.
    """
    far_target: float
    tar: float
    far: float
    threshold: float
    n_neg: int
    n_pos: int
    below_resolution: bool

    def to_dict(self):
        d = dataclasses.asdict(self)
        if not np.isfinite(d["threshold"]):
            d["threshold"] = None
        return d


def _max_false_accepts(far, n_neg):
    """Largest integer k with k / n_neg <= far (robust to float rounding)."""
    k = int(np.floor(far * n_neg))
    while (k + 1) / n_neg <= far:
        k += 1
    while k > 0 and k / n_neg > far:
        k -= 1
    return max(k, 0)


def operating_point(scores, issame, far):
    """TAR at the lowest threshold whose FAR is at most ``far``.

    Thresholds range over the distinct scores (and ``+inf``); accepting at ``t`` accepts every
    pair with ``score >= t``, so tied scores are accepted or rejected together. With the impostor
    scores sorted in decreasing order ``n_1 >= n_2 >= ...`` and ``k`` the largest integer with
    ``k / N_neg <= far``, the chosen threshold is the smallest score strictly above ``n_{k+1}``
    and

        TAR = #{genuine scores > n_{k+1}} / N_pos,   FAR = #{impostor scores > n_{k+1}} / N_neg.

    Consequences: if ``n_{k+1}`` ties with ``n_k`` the achieved FAR is below ``k / N_neg`` (ties
    cannot be split); for ``far < 1 / N_neg`` (``k = 0``) the only admissible FAR is 0 and TAR is
    the fraction of genuine scores strictly above the highest impostor score (flagged
    ``below_resolution``); for ``far >= 1`` every pair is accepted (TAR = 1).

    Parameters
    ----------
    scores : array_like, shape (P,)
    issame : array_like of bool, shape (P,)
    far : float or sequence of float
        Target false accept rate(s), in ``[0, 1]``.

    Returns
    -------
    OperatingPoint or list of OperatingPoint
        A list when ``far`` is a sequence.
    """
    scores, issame = _check_scores(scores, issame)
    single = np.ndim(far) == 0
    targets = np.atleast_1d(np.asarray(far, dtype=np.float64))
    if ((targets < 0) | (targets > 1) | ~np.isfinite(targets)).any():
        raise ValueError(f"FAR targets must lie in [0, 1], got {targets.tolist()}")
    neg = scores[~issame]
    pos = np.sort(scores[issame])
    n_neg, n_pos = neg.size, pos.size
    ks = [_max_false_accepts(f, n_neg) for f in targets]
    # (k+1)-th largest impostor score = element n_neg-1-k of the ascending order.
    kth = sorted({n_neg - 1 - k for k in ks if k < n_neg})
    part = np.partition(neg, kth) if kth else neg
    out = []
    for f, k in zip(targets, ks):
        if k >= n_neg:
            out.append(OperatingPoint(float(f), 1.0, 1.0, float(scores.min()), n_neg, n_pos,
                                      False))
            continue
        v = part[n_neg - 1 - k]
        tar = (n_pos - np.searchsorted(pos, v, side="right")) / n_pos
        far_achieved = np.count_nonzero(neg > v) / n_neg
        above = scores[scores > v]  # O(P); no full sort of a 15.6 M-score set
        th = float(above.min()) if above.size else float("inf")
        out.append(OperatingPoint(float(f), float(tar), float(far_achieved), th, n_neg, n_pos,
                                  bool(f < 1.0 / n_neg)))
    return out[0] if single else out


def tar_at_far(scores, issame, far):
    """True accept rate at the lowest threshold whose false accept rate is at most ``far``.

    See :func:`operating_point` for the exact rule, ties and targets below ``1 / N_neg``.

    Parameters
    ----------
    scores : array_like, shape (P,)
    issame : array_like of bool, shape (P,)
    far : float or sequence of float

    Returns
    -------
    float, or np.ndarray of shape (len(far),) when ``far`` is a sequence.
    """
    points = operating_point(scores, issame, far)
    if isinstance(points, list):
        return np.array([p.tar for p in points])
    return points.tar


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
