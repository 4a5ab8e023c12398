"""RMFRD masked -> unmasked: real masked probes against a clean gallery of the same people.

The RMFRD subset (``<data_root>/rmfrd_subset``, see its README) holds 224x224 tight face crops of
23 people: 362 wearing a real mask (``AFDB_masked_face_dataset/<id>/``) and 1,358 without
(``AFDB_face_dataset/<id>/``), listed in ``labels.csv`` (``path,identity,masked``). It is for
evaluation only.

Protocol
--------
* Every image is aligned with YuNet's five points on the ArcFace 112x112 template (a plain YuNet,
  score threshold 0.6, no padded retry: it finds a face in 331 of the 362 masked crops and in 1,354
  of the 1,358 unmasked ones). A crop without a detection gets the ``fallback`` face (default
  ``"resize"``, see :data:`FALLBACKS`); how many did is reported.

  Why ``"resize"``: the crops are tight face crops (the data README says they can be used
  directly, resized to 112x112), and resizing the whole crop uses no statistic of the evaluation
  set. RMFRD is evaluation only: nothing of the protocol, the fallback included, may be fitted or
  tuned on it (e.g. the mean landmarks of its detected faces).
* Pairs: every masked probe x every unmasked image (21,390 genuine, 470,206 impostor pairs), scored
  by cosine similarity.
* Balanced accuracy: all genuine pairs plus as many impostor pairs drawn at random
  (``numpy.random.default_rng(seed).choice(n_impostor, n_genuine, replace=False)``), 10 folds split
  by probe image (probe ``q`` of the ``labels.csv`` order is in fold ``q % 10``, so all its pairs
  are in one fold and every fold mixes the identities), the threshold of each fold chosen on the
  other nine (:func:`occface.evaluation.metrics.verification_accuracy`).
* TAR at FAR 1e-2 and 1e-3 over all pairs (resolution ``1 / n_impostor``).
* Rank-1 identification of each masked probe against all 1,358 unmasked images.

Only real occlusion is measured here: synthetic occlusion kinds do not apply.
"""

import csv
import dataclasses
import logging
import pathlib

import numpy as np

from occface.evaluation.embedding import as_embedding_model
from occface.evaluation.identification import rank1_identification
from occface.evaluation.metrics import l2_normalize, operating_point, roc, verification_accuracy
from occface.evaluation.protocols import EmbeddingCache, FaceSource
from occface.evaluation.scoring import score_index_pairs

__all__ = ["RMFRD_FARS", "FALLBACKS", "RmfrdSet", "RmfrdPairs", "read_rmfrd", "probe_folds",
           "rmfrd_pairs", "balanced_pair_subset", "crop_fallback", "evaluate_rmfrd_features",
           "evaluate_rmfrd"]

log = logging.getLogger(__name__)

#: TAR@FAR targets of the protocol.
RMFRD_FARS = (1e-2, 1e-3)
#: Faces for a crop in which YuNet finds no face: ``"resize"`` (the default) resizes the whole
#: crop to 112x112, ``"center"`` resizes its central 60 % (the LFW-oriented fallback of
#: :func:`occface.data.load_aligned_face`). Neither uses any statistic of RMFRD.
FALLBACKS = ("resize", "center")

_MASKED_DIR, _UNMASKED_DIR = "AFDB_masked_face_dataset", "AFDB_face_dataset"
_COLUMNS = ("path", "identity", "masked")


@dataclasses.dataclass
class RmfrdSet:
    """The masked probes and the unmasked gallery of an RMFRD tree, in ``labels.csv`` order.

    Attributes
    ----------
    root : pathlib.Path
    probe_keys : list of str, length Q
        Paths of the masked images.
    probe_labels : np.ndarray of str, shape (Q,)
    gallery_keys : list of str, length G
        Paths of the unmasked images.
    gallery_labels : np.ndarray of str, shape (G,)
    """
    root: pathlib.Path
    probe_keys: list
    probe_labels: np.ndarray
    gallery_keys: list
    gallery_labels: np.ndarray

    @property
    def n_identities(self):
        return int(np.unique(np.concatenate([self.probe_labels, self.gallery_labels])).size)


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


def read_rmfrd(data_dir):
    """Read ``labels.csv`` of an RMFRD tree into probes (masked) and gallery (unmasked).

    Parameters
    ----------
    data_dir : str or path
        Directory holding ``labels.csv`` (columns ``path,identity,masked``; ``path`` relative to
        ``data_dir``, ``masked`` 1 or 0).

    Returns
    -------
    RmfrdSet

    Raises
    ------
    FileNotFoundError
        ``data_dir``, ``labels.csv`` or a listed image is missing.
    ValueError
        A malformed ``labels.csv``; no masked or no unmasked rows; a masked identity with no
        unmasked image (identification is closed-set).
    """
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"RMFRD directory not found: {root}")
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"RMFRD labels not found: {labels}")
    sides = {True: ([], []), False: ([], [])}
    with open(labels, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if tuple(header) != _COLUMNS:
            raise ValueError(f"{labels}: expected the header 'path,identity,masked', got "
                             f"{','.join(header)!r}")
        for n, row in enumerate(reader, 2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise ValueError(f"{labels}:{n}: expected 3 fields (path,identity,masked), got "
                                 f"{len(row)}")
            path, identity, masked = (c.strip() for c in row)
            if masked not in ("0", "1"):
                raise ValueError(f"{labels}:{n}: masked must be 0 or 1, got {masked!r}")
            if not path or not identity:
                raise ValueError(f"{labels}:{n}: empty path or identity")
            image = root / path
            if not image.is_file():
                raise FileNotFoundError(f"{labels}:{n}: image not found: {image}")
            keys, ids = sides[masked == "1"]
            keys.append(str(image))
            ids.append(identity)
    if not sides[True][0]:
        raise ValueError(f"{labels}: no masked rows (masked=1): no probes to evaluate")
    if not sides[False][0]:
        raise ValueError(f"{labels}: no unmasked rows (masked=0): no gallery to match against")
    probe_labels, gallery_labels = np.array(sides[True][1]), np.array(sides[False][1])
    orphans = sorted(set(probe_labels) - set(gallery_labels))
    if orphans:
        raise ValueError(f"{labels}: masked identities without unmasked images: "
                         f"{', '.join(orphans)}")
    return RmfrdSet(root, sides[True][0], probe_labels, sides[False][0], gallery_labels)


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


class _CropFallback:
    """One of :data:`FALLBACKS` as a :class:`FaceSource` fallback (``name`` keys the cache)."""

    def __init__(self, kind, tag=""):
        if kind not in FALLBACKS:
            raise ValueError(f"unknown fallback {kind!r}; choose from {', '.join(FALLBACKS)}")
        self.kind = kind
        self.name = f"rmfrd-{kind}{tag}"

    def __call__(self, image, size):
        from occface.data import center_crop, template_landmarks
        face = center_crop(image, size, 1.0 if self.kind == "resize" else 0.6)
        return face, template_landmarks(size)


def crop_fallback(kind="resize"):
    """The :class:`~occface.evaluation.protocols.FaceSource` fallback named ``kind``.

    Parameters
    ----------
    kind : {"resize", "center"}
        See :data:`FALLBACKS`.

    Returns
    -------
    callable
        ``fallback(image (H, W, 3) uint8, size) -> (face (size, size, 3) uint8, template
        landmarks (5, 2))``.
    """
    return _CropFallback(kind)


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


def evaluate_rmfrd(model, data_dir, flip=False, seed=0, fars=RMFRD_FARS, batch_size=64,
                   cache_dir=None, fallback="resize", n_folds=10, align="detect", detector=None,
                   progress_factory=None):
    """Evaluate a recognizer on the RMFRD masked -> unmasked protocol (module docstring).

    Parameters
    ----------
    model : EmbeddingModel, keras.Model or path
        Maps faces ``(N, 112, 112, 3)`` RGB in [0, 255] to embeddings ``(N, D)``.
    data_dir : str or path
        The RMFRD tree (``labels.csv`` and the two image folders).
    flip : bool
        Flip-test embeddings (``f(x) + f(mirror(x))``).
    seed : int
        Seed of the impostor draw of the balanced accuracy.
    fars : sequence of float
    batch_size : int
    cache_dir : str or path, optional
        Keep the aligned faces there (no re-detection next time).
    fallback : {"resize", "center"}
        Face of a crop in which YuNet finds none (:data:`FALLBACKS`).
    n_folds : int
    align : {"detect", "aligned"}
        ``"detect"`` is the protocol; ``"aligned"`` takes every crop as an aligned face (resized
        to 112x112, no detection).
    detector : occface.data.FaceDetector, optional
        Default: YuNet at score threshold 0.6 without the padded retry (``pad=0``).
    progress_factory : callable, optional
        ``progress_factory(total=..., desc=...)`` -> object with ``update(n)`` and ``close()``.

    Returns
    -------
    dict
        :func:`evaluate_rmfrd_features`'s numbers plus ``protocol``, ``occlusion`` /
        ``occlude`` (``"none"``: the masks are real), ``seed``, ``flip``, ``fallback`` and the
        fallback counts ``n_fallback``, ``n_fallback_probes``, ``n_fallback_gallery``.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`read_rmfrd`; an unknown ``fallback`` or ``align``.
    """
    if align not in ("detect", "aligned"):
        raise ValueError(f"align must be 'detect' or 'aligned', got {align!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose from {', '.join(FALLBACKS)}")
    rmfrd = read_rmfrd(data_dir)
    model = as_embedding_model(model)
    if align == "detect":
        if detector is None:
            from occface.data import FaceDetector
            detector = FaceDetector(pad=0)
        tag = f"|pad={getattr(detector, 'pad', '')}"
        source = FaceSource("detect", size=112, detector=detector, cache_dir=cache_dir,
                            fallback=_CropFallback(fallback, tag))
    else:
        source = FaceSource("aligned", size=112)
    keys = rmfrd.probe_keys + rmfrd.gallery_keys
    bar = progress_factory(total=len(keys), desc="load faces ") if progress_factory else None
    source.preload(keys, progress=bar.update if bar else None)
    if bar is not None:
        bar.close()
    missed = np.array([not source.get(k)[2] for k in keys])
    q = len(rmfrd.probe_keys)
    log.info("RMFRD: no face found in %d of %d masked and %d of %d unmasked crops (%s fallback)",
             missed[:q].sum(), q, missed[q:].sum(), missed.size - q, fallback)
    cache = EmbeddingCache(model, source, batch_size, progress_factory)
    feats = cache.get(keys, "none", 0, flip)
    result = {"protocol": "rmfrd", "occlusion": "none", "occlude": "none", "seed": int(seed),
              "flip": bool(flip), "align": align,
              "fallback": fallback if align == "detect" else None}
    result.update(evaluate_rmfrd_features(feats[:q], feats[q:], rmfrd, seed, fars, n_folds))
    result.update({"n_fallback": int(missed.sum()), "n_fallback_probes": int(missed[:q].sum()),
                   "n_fallback_gallery": int(missed[q:].sum())})
    result["faces"] = {"mode": source.mode, "size": source.size, **source.stats}
    return result
