"""A verification protocol whose test folds choose nothing.

LFW ``pairs.txt`` has 10 identity-disjoint folds (0-based here). A model trained on the
identities of folds 0–5 (plus people in no pair) is scored as follows:

* the **validation** fold (6) fixes the decision threshold (best clean accuracy there);
* the **test** folds (7–9) are read once, clean and with the second face of every pair
  occluded (each kind at several occlusion seeds), giving for every condition

  - ``accuracy``: at the validation threshold — the number a user deploying the model gets;
  - ``fold_cv_accuracy``: the usual k-fold figure over the test folds (threshold from the other
    test folds; reported for comparison with papers, not used to choose anything);
  - ``tar_at_far``: TAR at FAR = 1e-2 with its exact operating point (900 impostor pairs in
    3 folds: one false accept is FAR 1.1e-3, so 1e-2 allows 9);
  - mean genuine / impostor cosine (a collapsed model has impostor cosine near 1);

  and, per occluded condition, ``eq8_image``: Eq. 8 of the LCD paper in its image-occlusion form
  (:func:`occlusion_feature_robustness`).
"""

import numpy as np

from occface.evaluation.protocols import PairSet
from occface.evaluation.roc import operating_point
from occface.evaluation.similarity import feature_robustness, pair_scores
from occface.evaluation.verification import (best_threshold, interleaved_folds,
                                             verification_accuracy)

#: Test conditions (one face of each pair occluded), as in the LCD study (issue 14).
TEST_OCCLUSIONS = ("none", "mask", "sunglasses", "upper", "lower", "block")


def subset_pairs(pairs, folds):
    """The pairs of ``folds`` (0-based) of a :class:`PairSet`, renumbered ``0 .. k-1``.

    A single fold is split into 5 interleaved sub-folds
    (:func:`~occface.evaluation.verification.interleaved_folds`; a :class:`PairSet` needs two
    folds, and each sub-fold must hold both genuine and impostor pairs for its fold-CV figure).
    """
    keep = np.isin(pairs.folds, list(folds))
    if not keep.any():
        raise ValueError(f"no pair in folds {list(folds)}")
    idx = np.flatnonzero(keep)
    _, folds_new = np.unique(pairs.folds[idx], return_inverse=True)
    if folds_new.max() == 0:
        folds_new = interleaved_folds(len(idx))
    return PairSet([pairs.keys_a[i] for i in idx], [pairs.keys_b[i] for i in idx],
                   pairs.issame[idx], folds_new, name=f"{pairs.name}[{','.join(map(str, folds))}]")


def condition_scores(cache, pairs, occlusion="none", seed=0):
    """Cosine scores ``(P,)`` with the second face of every pair occluded by ``occlusion``."""
    emb_a = cache.get(list(pairs.keys_a), "none", 0)
    emb_b = cache.get(list(pairs.keys_b), occlusion, seed)
    return pair_scores(emb_a, emb_b)


def occlusion_feature_robustness(cache, pairs, occlusions, occlusion_seeds=(0, 1, 2)):
    """Eq. 8 (LCD paper), image-occlusion form, on the faces a test condition occludes.

    For every occluded condition, the mean squared distance between the L2-normalised embeddings
    of each pair's second face clean and occluded
    (:func:`~occface.evaluation.similarity.feature_robustness`), averaged over occlusion seeds.
    Lower is more robust; ``2 - 2 * mean cosine``, in ``[0, 4]``.

    Parameters
    ----------
    cache : occface.evaluation.EmbeddingCache
    pairs : PairSet
        The test pairs; their ``keys_b`` are the faces occluded.
    occlusions : sequence of str
        Conditions; ``"none"`` is skipped.
    occlusion_seeds : sequence of int

    Returns
    -------
    dict
        ``{condition: float}``.
    """
    keys = list(pairs.keys_b)
    clean = cache.get(keys, "none", 0)
    return {occ: float(np.mean([feature_robustness(clean, cache.get(keys, occ, s))
                                for s in occlusion_seeds]))
            for occ in occlusions if occ != "none"}


def score_condition(scores, issame, folds, threshold, far=1e-2):
    """Every figure of one test condition.

    Parameters
    ----------
    scores : np.ndarray float (P,)
    issame : np.ndarray bool (P,)
    folds : np.ndarray int (P,)
        Test fold of each pair (for the fold-CV figure).
    threshold : float
        Decision threshold fixed on the validation fold (``score >= threshold`` = same).
    far : float

    Returns
    -------
    dict
        ``accuracy``, ``fold_cv_accuracy``, ``tar_at_far`` (+ ``far``, ``far_achieved``,
        ``threshold_at_far``), ``mean_genuine_cosine``, ``mean_impostor_cosine``, ``n_pairs``.
    """
    scores = np.asarray(scores, np.float64)
    issame = np.asarray(issame, bool)
    point = operating_point(scores, issame, [far])[0]
    return {
        "accuracy": float(np.mean((scores >= threshold) == issame)),
        "fold_cv_accuracy": float(verification_accuracy(scores, issame, folds).accuracy),
        "tar_at_far": float(point.tar), "far": far, "far_achieved": float(point.far),
        "threshold_at_far": float(point.threshold) if np.isfinite(point.threshold) else None,
        "mean_genuine_cosine": float(scores[issame].mean()),
        "mean_impostor_cosine": float(scores[~issame].mean()),
        "n_pairs": int(scores.size),
    }


def heldout_evaluation(cache, pairs, val_folds=(6,), test_folds=(7, 8, 9),
                       occlusions=TEST_OCCLUSIONS, occlusion_seeds=(0, 1, 2), far=1e-2):
    """Validation threshold on ``val_folds``, then every test condition on ``test_folds``.

    Parameters
    ----------
    cache : occface.evaluation.EmbeddingCache
        The model and its face source.
    pairs : PairSet
        All pairs (e.g. LFW ``pairs.txt``), with fold ids.
    val_folds, test_folds : sequence of int
        Disjoint 0-based folds.
    occlusions : sequence of str
        ``"none"`` = clean; other kinds occlude the second face of each test pair.
    occlusion_seeds : sequence of int
        Seeds per occluded condition (the clean condition has one).

    Returns
    -------
    dict
        ``threshold``, ``validation`` (clean figures on the validation fold), ``test``:
        ``{condition: {"seeds": {seed: figures}, "mean": {figure: mean over seeds}}}`` and
        ``gap`` (clean minus occluded accuracy per occluded condition) and ``eq8_image``
        (:func:`occlusion_feature_robustness` on the test pairs).
    """
    if set(val_folds) & set(test_folds):
        raise ValueError(f"validation folds {list(val_folds)} and test folds "
                         f"{list(test_folds)} overlap")
    val = subset_pairs(pairs, val_folds)
    val_scores = condition_scores(cache, val)
    threshold, _ = best_threshold(val_scores, val.issame)
    test = subset_pairs(pairs, test_folds)
    out = {"threshold": threshold, "val_folds": list(val_folds), "test_folds": list(test_folds),
           "validation": score_condition(val_scores, val.issame, val.folds, threshold, far),
           "test": {}}
    for occ in occlusions:
        seeds = (0,) if occ == "none" else tuple(occlusion_seeds)
        per_seed = {str(s): score_condition(condition_scores(cache, test, occ, s), test.issame,
                                            test.folds, threshold, far) for s in seeds}
        keys = per_seed[str(seeds[0])].keys()
        mean = {k: float(np.mean([r[k] for r in per_seed.values()])) for k in keys}
        out["test"][occ] = {"seeds": per_seed, "mean": mean}
    clean = out["test"].get("none", {}).get("mean", {}).get("accuracy")
    if clean is not None:
        out["gap"] = {occ: clean - r["mean"]["accuracy"]
                      for occ, r in out["test"].items() if occ != "none"}
    out["eq8_image"] = occlusion_feature_robustness(cache, test, occlusions, occlusion_seeds)
    return out
