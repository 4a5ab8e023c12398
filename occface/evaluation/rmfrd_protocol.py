"""The RMFRD masked -> unmasked pair and gallery protocol, on the embeddings of its faces.

Every masked probe x every unmasked image is a pair (probe-major), scored by cosine similarity;
from the scores: the balanced accuracy (all genuine pairs plus as many random impostor pairs,
folds by probe image), TAR at FAR over all pairs and rank-1 identification of each probe against
the gallery. The protocol is described in full in :mod:`~occface.evaluation.rmfrd`.
"""

import dataclasses

import numpy as np

from occface.evaluation.identification import rank1_identification
from occface.evaluation.roc import operating_point, roc
from occface.evaluation.scoring import score_index_pairs
from occface.evaluation.similarity import l2_normalize
from occface.evaluation.verification import verification_accuracy

__all__ = ["RMFRD_FARS", "RmfrdPairs", "probe_folds", "rmfrd_pairs", "balanced_pair_subset",
           "evaluate_rmfrd_features"]

#: TAR@FAR targets of the protocol.
RMFRD_FARS = (1e-2, 1e-3)


@dataclasses.dataclass
class RmfrdPairs:
    """Every probe x every gallery image, probe-major (pair ``q * G + g``).

    Attributes
    ----------
    probe, gallery : np.ndarray of int, shape (P,) with P = Q * G
        Probe and gallery index of each pair.
    issame : np.ndarray of bool, shape (P,)
    folds : np.ndarray of int, shape (P,)
        Fold of each pair: the fold of its probe (:func:`probe_folds`).
    """
    probe: np.ndarray
    gallery: np.ndarray
    issame: np.ndarray
    folds: np.ndarray

    def __len__(self):
        return self.issame.size

    @property
    def n_genuine(self):
        return int(self.issame.sum())

    @property
    def n_impostor(self):
        return int(self.issame.size - self.issame.sum())


def probe_folds(n_probes, n_folds=10):
    """Fold of each probe image: probe ``q`` is in fold ``q % n_folds``.

    Parameters
    ----------
    n_probes, n_folds : int

    Returns
    -------
    np.ndarray of int, shape (n_probes,)
    """
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    if n_probes < n_folds:
        raise ValueError(f"cannot split {n_probes} probe images into {n_folds} folds")
    return np.arange(n_probes) % n_folds


def rmfrd_pairs(rmfrd, n_folds=10):
    """Every masked probe x every unmasked image, with folds by probe.

    Parameters
    ----------
    rmfrd : RmfrdSet
    n_folds : int

    Returns
    -------
    RmfrdPairs
        ``Q * G`` pairs, probe-major.
    """
    q, g = len(rmfrd.probe_keys), len(rmfrd.gallery_keys)
    probe = np.repeat(np.arange(q), g)
    gallery = np.tile(np.arange(g), q)
    issame = (rmfrd.probe_labels[:, None] == rmfrd.gallery_labels[None, :]).reshape(-1)
    return RmfrdPairs(probe, gallery, issame, probe_folds(q, n_folds)[probe])


def balanced_pair_subset(issame, seed=0):
    """Indices of every genuine pair plus as many impostor pairs drawn at random.

    The impostors are ``np.flatnonzero(~issame)[rng.choice(n_impostor, n_genuine,
    replace=False)]`` with ``rng = np.random.default_rng(seed)``.

    Parameters
    ----------
    issame : array_like of bool, shape (P,)
    seed : int

    Returns
    -------
    np.ndarray of int, shape (2 * n_genuine,)
        Sorted pair indices.
    """
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    genuine, impostor = np.flatnonzero(issame), np.flatnonzero(~issame)
    if genuine.size == 0:
        raise ValueError("no genuine pairs")
    if impostor.size < genuine.size:
        raise ValueError(f"cannot balance {genuine.size} genuine pairs with only "
                         f"{impostor.size} impostor pairs")
    pick = np.random.default_rng(seed).choice(impostor.size, genuine.size, replace=False)
    return np.sort(np.concatenate([genuine, impostor[pick]]))


def evaluate_rmfrd_features(probe_feats, gallery_feats, rmfrd, seed=0, fars=RMFRD_FARS,
                            n_folds=10, roc_points=512):
    """The RMFRD numbers from the embeddings of the probes and of the gallery.

    Parameters
    ----------
    probe_feats : array_like, shape (Q, D)
        Embeddings of ``rmfrd.probe_keys`` (masked), row-aligned.
    gallery_feats : array_like, shape (G, D)
        Embeddings of ``rmfrd.gallery_keys`` (unmasked), row-aligned.
    rmfrd : RmfrdSet
    seed : int
        Seed of the impostor draw of the balanced set.
    fars : sequence of float
        TAR@FAR targets (over all pairs).
    n_folds : int
        Folds of the balanced accuracy (split by probe).
    roc_points : int
        Points of the sampled ROC curve in the result.

    Returns
    -------
    dict
        Counts (``n_identities``, ``n_probes``, ``n_gallery``, ``n_pairs``, ``n_genuine``,
        ``n_impostor``); the balanced accuracy (``accuracy``, ``std``, ``fold_accuracies``,
        ``thresholds``, ``fold_sizes``, ``best_threshold``, ``n_balanced_pairs``, ``n_folds``);
        ``tar_at_far`` / ``operating_points`` over all pairs with ``far_resolution``; ``rank1``
        and ``n_rank1_correct``; ``mean_genuine_score``, ``mean_impostor_score``, ``auc`` and a
        sampled ``roc``.
    """
    probe_feats = l2_normalize(probe_feats)
    gallery_feats = l2_normalize(gallery_feats)
    q, g = len(rmfrd.probe_keys), len(rmfrd.gallery_keys)
    if probe_feats.ndim != 2 or probe_feats.shape[0] != q:
        raise ValueError(f"probe_feats must be ({q}, D); got {probe_feats.shape}")
    if gallery_feats.ndim != 2 or gallery_feats.shape != (g, probe_feats.shape[1]):
        raise ValueError(f"gallery_feats must be ({g}, {probe_feats.shape[1]}); got "
                         f"{gallery_feats.shape}")
    pairs = rmfrd_pairs(rmfrd, n_folds)
    scores = score_index_pairs(probe_feats, pairs.probe, pairs.gallery, feats_b=gallery_feats,
                               gemm_density=0)
    sub = balanced_pair_subset(pairs.issame, seed)
    ver = verification_accuracy(scores[sub], pairs.issame[sub], pairs.folds[sub])
    points = operating_point(scores, pairs.issame, list(fars))
    curve = roc(scores, pairs.issame)
    fpr, tpr, _ = curve.sample(roc_points)
    ident = rank1_identification(probe_feats, rmfrd.probe_labels, gallery_feats,
                                 rmfrd.gallery_labels)
    return {
        "n_identities": rmfrd.n_identities, "n_probes": q, "n_gallery": g,
        "n_pairs": len(pairs), "n_genuine": pairs.n_genuine, "n_impostor": pairs.n_impostor,
        "accuracy_kind": "balanced: all genuine pairs + as many random impostor pairs, "
                         "folds by probe image (fold = probe index % n_folds)",
        **ver.to_dict(), "n_folds": int(n_folds), "n_balanced_pairs": int(sub.size),
        "tar_at_far": {f"{p.far_target:g}": p.tar for p in points},
        "operating_points": [p.to_dict() for p in points],
        "far_resolution": 1.0 / pairs.n_impostor,
        "rank1": ident["rank1"], "n_rank1_correct": int(ident["correct"].sum()),
        "mean_genuine_score": float(scores[pairs.issame].mean()),
        "mean_impostor_score": float(scores[~pairs.issame].mean()),
        "auc": curve.auc, "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }
