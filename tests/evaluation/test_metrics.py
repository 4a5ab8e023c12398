"""Verification metrics against hand-computed cases and brute-force references."""
import numpy as np
import pytest

from occface.evaluation import (best_threshold, feature_robustness, fold_ids, operating_point,
                                pair_scores, roc, tar_at_far, verification_accuracy)


def _ten_fold_example():
    """10 folds x (1 genuine, 1 impostor). Folds 0..8 separable, fold 9 inverted."""
    scores, issame, folds = [], [], []
    for i in range(10):
        pos, neg = (0.5 + 0.05 * i, 0.05 * i) if i < 9 else (0.1, 0.95)
        scores += [pos, neg]
        issame += [True, False]
        folds += [i, i]
    return np.array(scores), np.array(issame), np.array(folds)


def test_ten_fold_exact_accuracy_and_thresholds():
    scores, issame, folds = _ten_fold_example()
    res = verification_accuracy(scores, issame, folds=10)
    # Fold 0 trains without pos 0.50: gap (0.40, 0.55) -> 0.475; fold 8 without neg 0.40:
    # gap (0.35, 0.90...) -> (0.35 + 0.50) / 2; folds 1..7 and 9: gap (0.40, 0.50) -> 0.45.
    expected = [0.475] + [0.45] * 7 + [0.425, 0.45]
    np.testing.assert_allclose(res.thresholds, expected, atol=1e-12)
    assert res.fold_accuracies == [1.0] * 9 + [0.0]
    assert res.accuracy == pytest.approx(0.9)
    assert res.std == pytest.approx(0.3)  # population std of nine 1s and one 0
    assert res.fold_sizes == [2] * 10
    # Same result when the folds are given explicitly, in any label order.
    res2 = verification_accuracy(scores, issame, folds=folds + 100)
    assert res2.thresholds == res.thresholds
    assert res["accuracy"] == res.to_dict()["accuracy"]


def test_fold_ids_contiguous_like_lfw():
    np.testing.assert_array_equal(fold_ids(6000, 10), np.repeat(np.arange(10), 600))
    np.testing.assert_array_equal(fold_ids(7, 3), [0, 0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError):
        fold_ids(3, 10)
    with pytest.raises(ValueError):
        fold_ids(5, [0, 1])


def test_best_threshold_tie_goes_to_lowest():
    # neg 0.2, pos 0.4, neg 0.6, pos 0.8: thresholds 0.3 and 0.7 both give 3/4.
    th, acc = best_threshold([0.2, 0.4, 0.6, 0.8], [False, True, False, True])
    assert th == pytest.approx(0.3)
    assert acc == pytest.approx(0.75)


def test_best_threshold_tied_scores_accepted_together():
    # A genuine and an impostor pair with the same score cannot be separated.
    th, acc = best_threshold([0.5, 0.5, 0.9, 0.1], [True, False, True, False])
    assert acc == pytest.approx(0.75)
    assert th == pytest.approx(0.3)  # accept {0.5, 0.5, 0.9}: lowest of the two 3/4 thresholds


def _brute_force_accuracy(scores, issame, folds):
    ids = fold_ids(len(scores), folds)
    accs = []
    for i in range(ids.max() + 1):
        tr = ids != i
        u = np.unique(scores[tr])
        cands = np.concatenate([[u[0] - 1], (u[1:] + u[:-1]) / 2, [u[-1] + 1]])
        train_acc = [np.mean((scores[tr] >= t) == issame[tr]) for t in cands]
        t = cands[int(np.argmax(train_acc))]
        accs.append(np.mean((scores[~tr] >= t) == issame[~tr]))
    return np.mean(accs), np.std(accs)


def test_verification_accuracy_matches_brute_force(rng):
    issame = rng.random(300) < 0.5
    scores = np.round(rng.normal(issame * 0.8, 1.0), 1)  # rounded: many ties
    mean, std = _brute_force_accuracy(scores, issame, 10)
    res = verification_accuracy(scores, issame, 10)
    assert res.accuracy == pytest.approx(mean)
    assert res.std == pytest.approx(std)


def test_roc_points_with_ties():
    s = [0.9, 0.8, 0.7, 0.3, 0.2, 0.7]
    y = [True, True, False, True, False, True]
    fpr, tpr, th = roc(s, y)
    # 0.7 is shared by an impostor and a genuine pair: one diagonal step.
    np.testing.assert_allclose(th, [np.inf, 0.9, 0.8, 0.7, 0.3, 0.2])
    np.testing.assert_allclose(tpr, [0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 0.5, 1])
    assert roc(s, y).auc == pytest.approx(0.5 * 0.625 + 0.5 * 1.0)


# Ten impostors (two tied at 0.8) and five genuine pairs (one tied with them).
NEG = [0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0]
POS = [0.95, 0.85, 0.8, 0.7, 0.6]
SCORES = np.array(NEG + POS)
ISSAME = np.array([False] * 10 + [True] * 5)


@pytest.mark.parametrize("far, tar, far_achieved, threshold, below", [
    (0.1, 0.4, 0.1, 0.85, False),     # k=1: n_2 = 0.8 ties n_3, accept only > 0.8
    (0.2, 0.4, 0.1, 0.85, False),     # k=2 would split the 0.8 tie: FAR stays 0.1
    (0.3, 1.0, 0.3, 0.6, False),      # k=3: n_4 = 0.5, accept every genuine pair
    (0.299, 0.4, 0.1, 0.85, False),   # just below 3/10: back to k=2
    (0.05, 0.2, 0.0, 0.95, True),     # below 1/N_neg: only FAR 0 is admissible
    (1e-6, 0.2, 0.0, 0.95, True),
    (0.0, 0.2, 0.0, 0.95, True),
    (1.0, 1.0, 1.0, 0.0, False),      # accept everything
])
def test_tar_at_far_constructed(far, tar, far_achieved, threshold, below):
    p = operating_point(SCORES, ISSAME, far)
    assert p.tar == pytest.approx(tar)
    assert p.far == pytest.approx(far_achieved)
    assert p.far <= far
    assert p.threshold == pytest.approx(threshold)
    assert p.below_resolution is below
    assert tar_at_far(SCORES, ISSAME, far) == pytest.approx(tar)


def test_tar_at_far_top_impostor_above_everything():
    s = np.array([0.99, 0.5, 0.6, 0.7])
    y = np.array([False, False, True, True])
    p = operating_point(s, y, 0.1)
    assert p.tar == 0.0 and p.far == 0.0 and p.threshold == np.inf
    assert p.to_dict()["threshold"] is None


def test_tar_at_far_vector_matches_brute_force(rng):
    y = rng.random(2000) < 0.3
    s = np.round(rng.normal(y * 1.5, 1.0), 2)
    fars = [1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5]
    got = tar_at_far(s, y, fars)
    fpr, tpr, th = roc(s, y)
    for f, g in zip(fars, got):
        # Lowest threshold with FAR <= f is the last admissible ROC point.
        ok = np.nonzero(fpr <= f + 1e-15)[0]
        assert g == pytest.approx(tpr[ok[-1]])
    with pytest.raises(ValueError):
        tar_at_far(s, y, 1.5)
    with pytest.raises(ValueError):
        tar_at_far(s, np.zeros_like(y), 0.1)  # no genuine pairs


def test_feature_robustness_eq8():
    clean = np.array([[1.0, 0.0], [0.0, 2.0]])
    occl = np.array([[0.0, 1.0], [0.0, 5.0]])
    # normalised: ||(1,0)-(0,1)||^2 = 2, ||(0,1)-(0,1)||^2 = 0 -> mean 1
    assert feature_robustness(clean, occl) == pytest.approx(1.0)
    # raw: 2 and 9 -> 5.5
    assert feature_robustness(clean, occl, normalize=False) == pytest.approx(5.5)
    with pytest.raises(ValueError):
        feature_robustness(clean, occl[:1])


def test_pair_scores_cosine():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[6.0, 8.0], [0.0, 2.0]])
    np.testing.assert_allclose(pair_scores(a, b), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(pair_scores(a, b, normalize=False), [50.0, 0.0])


def test_roc_sample_keeps_ends_and_order(rng):
    y = rng.random(5000) < 0.5
    curve = roc(rng.normal(y * 1.0, 1.0), y)
    fpr, tpr, th = curve.sample(100)
    assert fpr.size <= 102 and fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(th) < 0).all()
    assert fpr[1] <= 2e-3  # log spacing reaches the low-FAR end
