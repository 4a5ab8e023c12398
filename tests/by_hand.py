"""Verification accuracies recomputed by brute force, for tests that check a reported accuracy
against an independent value (not against the library's own metric code)."""
import numpy as np


def accuracy_at(scores, issame, threshold):
    """Fraction of pairs decided right when ``score >= threshold`` means "same"."""
    scores, issame = np.asarray(scores, np.float64), np.asarray(issame, bool)
    return float(np.mean((scores >= threshold) == issame))


def _candidates(scores):
    """Midpoints between consecutive distinct scores, plus one below and one above all."""
    u = np.unique(scores)
    return [u[0] - 1.0] + [(lo + hi) / 2 for lo, hi in zip(u[:-1], u[1:])] + [u[-1] + 1.0]


def best_accuracy(scores, issame):
    """``(lowest threshold, accuracy)`` of the best threshold, trying every candidate in turn."""
    best = None
    for t in _candidates(np.asarray(scores, np.float64)):
        acc = accuracy_at(scores, issame, t)
        if best is None or acc > best[1]:
            best = (t, acc)
    return best


def kfold_accuracy(scores, issame, folds):
    """Mean held-out accuracy, each fold decided at the best threshold of the other folds."""
    scores, issame, folds = (np.asarray(scores, np.float64), np.asarray(issame, bool),
                             np.asarray(folds))
    accs = []
    for f in np.unique(folds):
        test = folds == f
        threshold, _ = best_accuracy(scores[~test], issame[~test])
        accs.append(accuracy_at(scores[test], issame[test], threshold))
    return float(np.mean(accs))


def cosine(a, b):
    """Row-wise cosine similarity of two (N, D) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
