"""IJB-C 1:1 template verification (the insightface protocol): pooling, pair scoring, TAR@FAR.

Image features (from :mod:`~occface.evaluation.ijbc_images`) are pooled into template features:

1. image features are L2-normalised (optionally multiplied by their faceness score);
2. **media level**: the features of the images of one media (one video or one still) inside a
   template are averaged, so a long video counts as one sample;
3. **template level**: the media features of a template are summed and L2-normalised.

A pair's score is the cosine of its two template features; TAR is reported at FAR 1e-6 ... 1e-1.
"""

import numpy as np

from occface.evaluation.roc import DEFAULT_FARS, operating_point, roc
from occface.evaluation.scoring import score_index_pairs
from occface.evaluation.similarity import l2_normalize

__all__ = ["template_features", "score_template_pairs", "evaluate_ijbc_features"]


def template_features(image_feats, templates, medias, faceness=None, normalize=True):
    """Pool image features into template features: media mean, then template sum, then L2 norm.

    Parameters
    ----------
    image_feats : np.ndarray, shape (N, D)
    templates, medias : array_like of int, shape (N,)
        Template and media id of each image.
    faceness : array_like, shape (N,), optional
        Detector (faceness) scores; when given, each (normalised) image feature is multiplied by
        its score before pooling, so doubtful detections weigh less.
    normalize : bool
        L2-normalise image features before pooling (``False`` keeps the feature norm as an
        implicit quality weight).

    Returns
    -------
    unique_templates : np.ndarray, int64, shape (T,)
        Sorted template ids.
    feats : np.ndarray, float32, shape (T, D)
        L2-normalised template features, row ``t`` for ``unique_templates[t]``.
    """
    x = np.asarray(image_feats, dtype=np.float32)
    templates = np.asarray(templates).reshape(-1)
    medias = np.asarray(medias).reshape(-1)
    if x.ndim != 2 or x.shape[0] != templates.size or medias.size != templates.size:
        raise ValueError(f"image features {x.shape}, templates ({templates.size},) and medias "
                         f"({medias.size},) must agree")
    if faceness is not None:
        faceness = np.asarray(faceness, dtype=np.float32).reshape(-1)
        if faceness.size != templates.size:
            raise ValueError("faceness must have one score per image")
    order = np.lexsort((medias, templates))
    xo = x[order]  # the only full-size copy; everything below works in place (float32)
    if normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", xo, xo))[:, None]
        np.divide(xo, np.maximum(norms, 1e-12), out=xo)
    if faceness is not None:
        np.multiply(xo, faceness[order][:, None], out=xo)
    t_sorted, m_sorted = templates[order], medias[order]
    new_media = np.ones(order.size, dtype=bool)
    new_media[1:] = (t_sorted[1:] != t_sorted[:-1]) | (m_sorted[1:] != m_sorted[:-1])
    starts = np.flatnonzero(new_media)
    counts = np.diff(np.append(starts, order.size))
    media_feats = np.add.reduceat(xo, starts, axis=0)
    del xo
    media_feats /= counts[:, None].astype(np.float32)
    media_templates = t_sorted[starts]
    new_t = np.ones(starts.size, dtype=bool)
    new_t[1:] = media_templates[1:] != media_templates[:-1]
    t_starts = np.flatnonzero(new_t)
    feats = np.add.reduceat(media_feats, t_starts, axis=0)
    return media_templates[t_starts].astype(np.int64), l2_normalize(feats)


def score_template_pairs(template_feats, unique_templates, t1, t2, **kwargs):
    """Cosine scores of template pairs ``(t1[p], t2[p])``, shape (P,) float32.

    ``template_feats`` must be L2-normalised (as :func:`template_features` returns them);
    ``kwargs`` go to :func:`occface.evaluation.scoring.score_index_pairs`. Never builds the
    ``T x T`` matrix.
    """
    unique_templates = np.asarray(unique_templates)
    t1, t2 = np.asarray(t1).reshape(-1), np.asarray(t2).reshape(-1)
    lo = min(int(t1.min(initial=0)), int(t2.min(initial=0)), int(unique_templates.min(initial=0)))
    hi = max(int(t1.max(initial=0)), int(t2.max(initial=0)), int(unique_templates.max(initial=0)))
    if lo >= 0 and hi < 64 * max(unique_templates.size, t1.size) + 1024:
        # Template ids are small integers (IJB-C: < 200 k): one table lookup per pair.
        lut = np.full(hi + 1, -1, dtype=np.int64)
        lut[unique_templates] = np.arange(unique_templates.size)
        i, j = lut[t1], lut[t2]
        ok_i, ok_j = i >= 0, j >= 0
    else:
        i = np.minimum(np.searchsorted(unique_templates, t1), unique_templates.size - 1)
        j = np.minimum(np.searchsorted(unique_templates, t2), unique_templates.size - 1)
        ok_i, ok_j = unique_templates[i] == t1, unique_templates[j] == t2
    for ok, t in ((ok_i, t1), (ok_j, t2)):
        if not ok.all():
            raise ValueError(f"template {int(t[~ok][0])} of a pair has no feature")
    return score_index_pairs(template_feats, i, j, **kwargs)


def evaluate_ijbc_features(image_feats, meta, fars=DEFAULT_FARS, use_faceness=False,
                           normalize=True, roc_points=512):
    """Template pooling, pair scoring and TAR@FAR from precomputed image features.

    Parameters
    ----------
    image_feats : np.ndarray, shape (N, D)
        Features of ``meta``'s images, in its order.
    meta : IJBCMeta
    fars : sequence of float
    use_faceness : bool
        Weight image features by the detector's faceness score.
    normalize : bool
        L2-normalise image features before pooling.
    roc_points : int
        Number of ROC points kept in the result (log-spaced in FAR).

    Returns
    -------
    dict
        ``scores`` (P,), ``tar_at_far`` {far: tar}, ``operating_points`` (list of dicts),
        ``auc``, ``roc`` (sampled fpr/tpr), counts.
    """
    unique_t, feats = template_features(image_feats, meta.templates, meta.medias,
                                        meta.faceness if use_faceness else None, normalize)
    scores = score_template_pairs(feats, unique_t, meta.pair_t1, meta.pair_t2)
    points = operating_point(scores, meta.pair_label, list(fars))
    curve = roc(scores, meta.pair_label)
    fpr, tpr, _ = curve.sample(roc_points)
    return {
        "scores": scores,
        "tar_at_far": {f"{p.far_target:g}": p.tar for p in points},
        "operating_points": [p.to_dict() for p in points],
        "auc": curve.auc,
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "n_images": len(meta), "n_templates": int(unique_t.size),
        "n_pairs": int(scores.size), "n_genuine": int(meta.pair_label.sum()),
        "n_impostor": int((~meta.pair_label).sum()),
        "use_faceness": bool(use_faceness), "normalize": bool(normalize),
    }
