"""Statistics over seeds: mean ± 95 % confidence interval and the paired verdict of a claim."""

import numpy as np

#: two-sided 97.5 % quantiles of Student's t for df = 1..10
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228}


def mean_ci(values):
    """``(mean, half-width of the 95 % CI)`` with Student's t (0 half-width for one value).

    Parameters
    ----------
    values : array_like float (n,)
        One figure per seed.
    """
    v = np.asarray(values, float)
    if v.size < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(T975.get(v.size - 1, 1.96) * v.std(ddof=1) / np.sqrt(v.size))


def paired_verdict(a, b):
    """Paired difference ``a - b`` over seeds and its verdict.

    The difference is significant when the 95 % CI of the per-seed differences excludes 0 (a
    two-sided paired t-test at 5 %).

    Parameters
    ----------
    a, b : array_like float (n,)
        The same figure of two arms, row ``i`` = seed ``i`` of both.

    Returns
    -------
    dict
        ``mean_diff``, ``ci95``, ``n`` and ``verdict``: ``"a > b"``, ``"a < b"``, ``"no
        significant difference"`` or ``"inconclusive (one seed)"``.
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    m, h = mean_ci(d)
    verdict = ("inconclusive (one seed)" if d.size < 2 else "a > b" if m - h > 0
               else "a < b" if m + h < 0 else "no significant difference")
    return {"mean_diff": m, "ci95": h, "n": int(d.size), "verdict": verdict}


def claim_result(verdict, min_seeds=3):
    """The study's word for a claim ``a > b`` given :func:`paired_verdict`'s output.

    Parameters
    ----------
    verdict : dict
        :func:`paired_verdict`'s result (``n`` and ``verdict`` are read).
    min_seeds : int
        Fewer paired seeds than this give ``"inconclusive"`` whatever the CI says.

    Returns
    -------
    str
        ``"holds"`` (CI above 0), ``"does not hold (reversed)"`` (CI below 0), ``"does not hold"``
        (CI spans 0) or ``"inconclusive"`` (fewer than ``min_seeds`` seeds).
    """
    if verdict["n"] < min_seeds:
        return "inconclusive"
    return {"a > b": "holds", "a < b": "does not hold (reversed)"}.get(verdict["verdict"],
                                                                        "does not hold")
