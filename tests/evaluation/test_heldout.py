"""The held-out protocol: validation threshold, test conditions, hand-computed figures."""
import numpy as np
import pytest

from occface.evaluation.heldout import heldout_evaluation, score_condition, subset_pairs
from occface.evaluation.protocols import PairSet
from occface.evaluation.similarity import pair_scores
from occface.evaluation.stats import claim_result, mean_ci, paired_verdict
from occface.evaluation.verification import best_threshold


def test_score_condition_by_hand():
    scores = np.array([0.9, 0.8, 0.3, 0.1, 0.6, 0.2])
    issame = np.array([1, 1, 0, 0, 1, 0], bool)
    folds = np.array([0, 0, 0, 1, 1, 1])
    r = score_condition(scores, issame, folds, threshold=0.7)
    assert r["accuracy"] == pytest.approx(5 / 6)  # 0.6 (genuine) is rejected at 0.7
    assert r["mean_genuine_cosine"] == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    assert r["mean_impostor_cosine"] == pytest.approx((0.3 + 0.1 + 0.2) / 3)
    # 3 impostors: FAR <= 1e-2 means no false accept; every genuine score is above 0.3
    assert r["tar_at_far"] == 1.0 and r["far_achieved"] == 0.0
    assert score_condition(scores, issame, folds, threshold=0.5)["accuracy"] == 1.0


def test_subset_pairs_renumbers_and_splits_a_single_fold():
    pairs = PairSet(list("abcdefgh"), list("ABCDEFGH"), [1, 0] * 4, [0, 0, 1, 1, 2, 2, 3, 3])
    sub = subset_pairs(pairs, (1, 3))
    assert sub.keys_a == list("cdgh") and sub.folds.tolist() == [0, 0, 1, 1]
    one = subset_pairs(pairs, (2,))
    assert one.keys_a == ["e", "f"] and one.folds.tolist() == [0, 1]
    # an LFW-like fold (genuine pairs first, then impostors): interleaved sub-folds, each with both
    lfw = PairSet([f"a{i}" for i in range(12)], [f"b{i}" for i in range(12)],
                  [1] * 5 + [0] * 5 + [1, 0], [0] * 10 + [1, 1])
    sub = subset_pairs(lfw, (0,))
    assert sub.folds.tolist() == [0, 1, 2, 3, 4] * 2
    # its fold-CV accuracy on separable scores is 1 (contiguous halves, one kind each, gave 0)
    scores = np.where(sub.issame, 0.8, 0.1)
    assert score_condition(scores, sub.issame, sub.folds, 0.5)["fold_cv_accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"no pair in folds \[7\]"):
        subset_pairs(pairs, (7,))


class _Cache:
    """Embeddings per key; occlusion adds a fixed, seed-dependent offset."""

    def __init__(self, emb):
        self.emb = emb

    def get(self, keys, occlusion="none", seed=0):
        out = np.stack([self.emb[k] for k in keys])
        if occlusion != "none":
            out = out + (0.3 + 0.1 * seed) * np.array([0.0, 1.0])
        return out


def test_threshold_comes_from_validation_only():
    rng = np.random.default_rng(0)
    keys_a = [f"a{i}" for i in range(16)]
    keys_b = [f"b{i}" for i in range(16)]
    issame = np.array([1, 0] * 8, bool)
    emb = {}
    for i, (a, b) in enumerate(zip(keys_a, keys_b)):
        emb[a] = rng.normal(size=2)
        emb[b] = emb[a] + rng.normal(scale=0.3 if issame[i] else 3.0, size=2)
    pairs = PairSet(keys_a, keys_b, issame, np.repeat(np.arange(4), 4))
    cache = _Cache(emb)
    out = heldout_evaluation(cache, pairs, val_folds=(0,), test_folds=(2, 3),
                             occlusions=("none", "block"), occlusion_seeds=(0, 1))
    val = [0, 1, 2, 3]
    s_val = pair_scores(np.stack([emb[keys_a[i]] for i in val]),
                        np.stack([emb[keys_b[i]] for i in val]))
    t, _ = best_threshold(s_val, issame[val])
    assert out["threshold"] == pytest.approx(t)
    test = list(range(8, 16))
    a = np.stack([emb[keys_a[i]] for i in test])
    for seed in (0, 1):
        b = np.stack([emb[keys_b[i]] for i in test]) + (0.3 + 0.1 * seed) * np.array([0.0, 1.0])
        want = np.mean((pair_scores(a, b) >= t) == issame[test])
        assert out["test"]["block"]["seeds"][str(seed)]["accuracy"] == pytest.approx(want)
    acc = [out["test"]["block"]["seeds"][s]["accuracy"] for s in ("0", "1")]
    assert out["test"]["block"]["mean"]["accuracy"] == pytest.approx(np.mean(acc))
    assert out["gap"]["block"] == pytest.approx(out["test"]["none"]["mean"]["accuracy"]
                                                - np.mean(acc))
    # Eq. 8, image form: 2 - 2 cos(clean, occluded) of each test pair's second face, seed mean
    clean = np.stack([emb[keys_b[i]] for i in test])
    shift = np.array([0.0, 1.0])
    want = np.mean([np.mean(2 - 2 * pair_scores(clean, clean + (0.3 + 0.1 * s) * shift))
                    for s in (0, 1)])
    assert set(out["eq8_image"]) == {"block"}
    assert out["eq8_image"]["block"] == pytest.approx(want)
    assert out["eq8_image"]["block"] > 0.0
    with pytest.raises(ValueError, match=r"validation folds \[2\] and test folds \[2, 3\] "
                                         r"overlap"):
        heldout_evaluation(cache, pairs, val_folds=(2,), test_folds=(2, 3))


def test_mean_ci_and_paired_verdict_by_hand():
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    assert mean_ci([5.0]) == (5.0, 0.0)
    assert paired_verdict([2.0, 2.1, 2.2], [1.0, 1.0, 1.1])["verdict"] == "a > b"
    assert paired_verdict([1.0, 1.0, 1.1], [2.0, 2.1, 2.2])["verdict"] == "a < b"
    assert paired_verdict([1.0, 2.0, 0.0], [1.0, 1.0, 1.0])["verdict"] == \
        "no significant difference"
    assert paired_verdict([1.0], [0.0])["verdict"] == "inconclusive (one seed)"


def test_claim_result_needs_three_seeds_even_when_significant():
    two = paired_verdict([9.0, 9.1], [0.0, 0.05])  # d = 9.0, 9.05: CI 9.025 ± 0.32 excludes 0
    assert two["verdict"] == "a > b"
    assert claim_result(two) == "inconclusive"
    assert claim_result(two, min_seeds=2) == "holds"
    assert claim_result(paired_verdict([1.0, 1.0, 1.1], [2.0, 2.1, 2.2])) == \
        "does not hold (reversed)"
    assert claim_result(paired_verdict([1.0, 2.0, 0.0], [1.0, 1.0, 1.0])) == "does not hold"
