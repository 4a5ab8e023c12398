"""ROC curves and true accept rate at a false accept rate (TAR@FAR), with exact tie handling.

Scores, acceptance (``score >= threshold``) and ``issame`` follow the conventions of
:mod:`~occface.evaluation.verification`.
"""

import dataclasses

import numpy as np

from occface.evaluation.verification import check_scores

__all__ = ["DEFAULT_FARS", "Roc", "roc", "OperatingPoint", "operating_point", "tar_at_far"]

#: FAR targets reported by default (the IJB-C table: 1e-6 ... 1e-1).
DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


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
    scores, issame = check_scores(scores, issame)
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
    scores, issame = check_scores(scores, issame)
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
