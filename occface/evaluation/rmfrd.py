"""RMFRD masked -> unmasked: real masked probes against a clean gallery of the same people.

:func:`evaluate_rmfrd` runs the protocol below from a model to its numbers; the data are read
and aligned by :mod:`~occface.evaluation.rmfrd_data`, the numbers computed from the embeddings
by :mod:`~occface.evaluation.rmfrd_protocol`.

The RMFRD subset (``<data_root>/rmfrd_subset``, see its README) holds 224x224 tight face crops of
23 people: 362 wearing a real mask (``AFDB_masked_face_dataset/<id>/``) and 1,358 without
(``AFDB_face_dataset/<id>/``), listed in ``labels.csv`` (``path,identity,masked``). It is for
evaluation only.

Protocol
--------
* Every image is aligned with YuNet's five points on the ArcFace 112x112 template (a plain YuNet,
  score threshold 0.6, no padded retry: it finds a face in 331 of the 362 masked crops and in 1,354
  of the 1,358 unmasked ones). A crop without a detection gets the ``fallback`` face (default
  ``"resize"``, see :data:`~occface.evaluation.rmfrd_data.FALLBACKS`); how many did is reported.

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
  other nine (:func:`occface.evaluation.verification.verification_accuracy`).
* TAR at FAR 1e-2 and 1e-3 over all pairs (resolution ``1 / n_impostor``).
* Rank-1 identification of each masked probe against all 1,358 unmasked images.

Only real occlusion is measured here: synthetic occlusion kinds do not apply.
"""

import logging

import numpy as np

from occface.evaluation.embedding import as_embedding_model
from occface.evaluation.protocols import EmbeddingCache
from occface.evaluation.rmfrd_data import FALLBACKS, read_rmfrd, rmfrd_face_source
from occface.evaluation.rmfrd_protocol import RMFRD_FARS, evaluate_rmfrd_features

__all__ = ["evaluate_rmfrd"]

log = logging.getLogger(__name__)


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
        Face of a crop in which YuNet finds none
        (:data:`~occface.evaluation.rmfrd_data.FALLBACKS`).
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
        :func:`~occface.evaluation.rmfrd_protocol.evaluate_rmfrd_features`'s numbers plus
        ``protocol``, ``occlusion`` / ``occlude`` (``"none"``: the masks are real), ``seed``,
        ``flip``, ``fallback`` and the fallback counts ``n_fallback``, ``n_fallback_probes``,
        ``n_fallback_gallery``.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`~occface.evaluation.rmfrd_data.read_rmfrd`; an unknown ``fallback`` or
        ``align``.
    """
    if align not in ("detect", "aligned"):
        raise ValueError(f"align must be 'detect' or 'aligned', got {align!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose from {', '.join(FALLBACKS)}")
    rmfrd = read_rmfrd(data_dir)
    model = as_embedding_model(model)
    source = rmfrd_face_source(align, fallback, detector, cache_dir)
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
