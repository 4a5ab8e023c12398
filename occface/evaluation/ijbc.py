"""IJB-C 1:1 template verification (the insightface protocol), and its occluded-subset variant.

Files (insightface's IJB release layout; ``<t>`` is ``ijbc`` or ``ijbb``)::

    <root>/meta/<t>_face_tid_mid.txt        "<image> <template id> <media id>" per image
    <root>/meta/<t>_template_pair_label.txt "<template 1> <template 2> <label 0/1>" per pair
    <root>/meta/<t>_name_5pts_score.txt     "<image> x1 y1 ... x5 y5 <faceness score>" per image
    <root>/loose_crop/<image>               loose face crops

(the ``meta/`` files may also sit directly in ``<root>``). Each crop is aligned on the 112x112
ArcFace template with its five landmarks, embedded (optionally with flip-test), then pooled:

1. image features are L2-normalised (optionally multiplied by their faceness score);
2. **media level**: the features of the images of one media (one video or one still) inside a
   template are averaged, so a long video counts as one sample;
3. **template level**: the media features of a template are summed and L2-normalised.

A pair's score is the cosine of its two template features; TAR is reported at FAR 1e-6 ... 1e-1.
"""

import dataclasses
import logging
import os
import pathlib

import numpy as np

from occface.evaluation.metrics import DEFAULT_FARS, l2_normalize, operating_point, roc
from occface.evaluation.scoring import score_index_pairs

__all__ = ["IJBCMeta", "read_ijbc", "IJBCImages", "template_features", "score_template_pairs",
           "occluded_subset", "read_image_list", "evaluate_ijbc_features", "ijbc_image_features"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IJBCMeta:
    """Everything read from an IJB-style release, with images in ``face_tid_mid`` order.

    Attributes
    ----------
    image_dir : pathlib.Path
        Directory of the loose crops.
    names : list of str, length N
    landmarks : np.ndarray, float32, shape (N, 5, 2)
        Five landmarks in crop pixel coordinates.
    faceness : np.ndarray, float32, shape (N,)
    templates, medias : np.ndarray, int64, shape (N,)
    pair_t1, pair_t2 : np.ndarray, int64, shape (P,)
    pair_label : np.ndarray, bool, shape (P,)
    """
    image_dir: pathlib.Path
    names: list
    landmarks: np.ndarray
    faceness: np.ndarray
    templates: np.ndarray
    medias: np.ndarray
    pair_t1: np.ndarray
    pair_t2: np.ndarray
    pair_label: np.ndarray

    def __len__(self):
        return len(self.names)

    def subset_images(self, keep):
        """A copy with only the images at indices ``keep`` (pairs unchanged)."""
        keep = np.asarray(keep, dtype=np.int64)
        return dataclasses.replace(self, names=[self.names[k] for k in keep],
                                   landmarks=self.landmarks[keep], faceness=self.faceness[keep],
                                   templates=self.templates[keep], medias=self.medias[keep])


def _find(root, filename):
    for cand in (root / "meta" / filename, root / filename):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"IJB file {filename} not found in {root}/meta or {root}")


def _read_int_table(path, columns):
    """Fast whitespace-separated integer table (15.6 M IJB-C pair lines in a few seconds)."""
    flat = np.fromfile(path, dtype=np.int64, sep=" ")
    if flat.size % columns:
        raise ValueError(f"{path}: expected {columns} integer columns on every line")
    return flat.reshape(-1, columns)


def read_ijbc(root, target="ijbc", image_dir=None):
    """Read an IJB-C (or IJB-B) 1:1 release.

    Parameters
    ----------
    root : str or path
        Release directory (holding ``meta/`` and ``loose_crop/``).
    target : {"ijbc", "ijbb"}
        File-name prefix.
    image_dir : str or path, optional
        Loose crops directory; default ``<root>/loose_crop``.

    Returns
    -------
    IJBCMeta

    Raises
    ------
    FileNotFoundError
        A protocol file or the crop directory is missing.
    ValueError
        A malformed line (file and line named), an image of ``face_tid_mid`` without landmarks, or
        a pair naming a template that has no image.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"IJB directory not found: {root}")
    target = target.lower()
    tid_path = _find(root, f"{target}_face_tid_mid.txt")
    pair_path = _find(root, f"{target}_template_pair_label.txt")
    lmk_path = _find(root, f"{target}_name_5pts_score.txt")
    image_dir = pathlib.Path(image_dir) if image_dir is not None else root / "loose_crop"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"IJB loose crop directory not found: {image_dir}")

    lmk = {}
    with open(lmk_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 12:
                raise ValueError(f"{lmk_path}:{n}: expected '<image> x1 y1 ... x5 y5 <score>' "
                                 f"(12 fields), got {len(fields)}")
            try:
                lmk[fields[0]] = np.array(fields[1:], dtype=np.float32)
            except ValueError:
                raise ValueError(f"{lmk_path}:{n}: non-numeric landmark or score") from None

    names, templates, medias = [], [], []
    with open(tid_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 3:
                raise ValueError(f"{tid_path}:{n}: expected '<image> <template> <media>'")
            try:
                templates.append(int(fields[1]))
                medias.append(int(fields[2]))
            except ValueError:
                raise ValueError(f"{tid_path}:{n}: template and media ids must be integers") \
                    from None
            names.append(fields[0])
    if not names:
        raise ValueError(f"{tid_path}: no images")
    missing = [nm for nm in names if nm not in lmk]
    if missing:
        raise ValueError(f"{len(missing)} images of {tid_path.name} have no landmarks in "
                         f"{lmk_path.name} (e.g. {missing[0]})")
    rows = np.stack([lmk[nm] for nm in names])
    pairs = _read_int_table(pair_path, 3)
    templates = np.asarray(templates, dtype=np.int64)
    known = np.unique(templates)
    for col in (0, 1):
        bad = ~np.isin(pairs[:, col], known)
        if bad.any():
            raise ValueError(f"{pair_path.name}: template {int(pairs[bad, col][0])} of a pair has "
                             f"no image in {tid_path.name}")
    if not np.isin(pairs[:, 2], (0, 1)).all():
        raise ValueError(f"{pair_path.name}: labels must be 0 or 1")
    return IJBCMeta(image_dir=image_dir, names=names,
                    landmarks=rows[:, :10].reshape(-1, 5, 2), faceness=rows[:, 10],
                    templates=templates, medias=np.asarray(medias, dtype=np.int64),
                    pair_t1=pairs[:, 0].copy(), pair_t2=pairs[:, 1].copy(),
                    pair_label=pairs[:, 2].astype(bool))


class IJBCImages:
    """Lazy sequence of aligned (and optionally occluded) IJB crops, for :func:`embed_images`.

    ``images[a:b]`` reads, aligns (five given landmarks -> 112x112 ArcFace template) and returns
    ``uint8 (b-a, size, size, 3)`` RGB; nothing is kept in memory.

    Parameters
    ----------
    meta : IJBCMeta
    size : int
        Aligned side (112 for the recognizer; the embedding model resizes if it differs).
    occlusion : str, optional
        An ``occface.data.occlude`` kind applied to every aligned crop (``None``/``"none"``: clean).
    seed : int
        Occlusion seed (per image: derived from the seed and the image name).
    """

    def __init__(self, meta, size=112, occlusion=None, seed=0):
        self.meta = meta
        self.size = int(size)
        self.occlusion = None if occlusion in (None, "none") else occlusion
        self.seed = seed

    def __len__(self):
        return len(self.meta)

    def load(self, k):
        from occface.data import align_face, read_image
        import cv2
        bgr = read_image(self.meta.image_dir / self.meta.names[k])
        aligned, matrix = align_face(bgr, self.meta.landmarks[k], self.size, return_matrix=True)
        rgb = cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB)
        if self.occlusion is not None:
            from occface.data import template_landmarks
            from occface.evaluation.occlusion import occlude_face
            rgb, _ = occlude_face(rgb, template_landmarks(self.size), self.occlusion, self.seed,
                                  key=self.meta.names[k])
        return rgb

    def __getitem__(self, index):
        if isinstance(index, slice):
            ks = range(*index.indices(len(self)))
            if not ks:
                return np.zeros((0, self.size, self.size, 3), np.uint8)
            return np.stack([self.load(k) for k in ks])
        return self.load(int(index))


def ijbc_image_features(model, meta, batch_size=64, flip=True, occlusion=None, seed=0,
                        progress=None, size=112):
    """Embed every crop of ``meta`` (aligned with its landmarks), shape (N, D) float32."""
    from occface.evaluation.embedding import embed_images
    images = IJBCImages(meta, size=size, occlusion=occlusion, seed=seed)
    return embed_images(model, images, batch_size=batch_size, flip=flip, progress=progress)


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


def read_image_list(path):
    """Read a list of image names (one per line, ``#`` comments and blank lines skipped)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip() and not line.startswith("#")]


def occluded_subset(meta, occluded, mode="images"):
    """The occluded-subset variant of IJB-C 1:1 (LCD paper, Table IV).

    Parameters
    ----------
    meta : IJBCMeta
    occluded : iterable of str
        Names of the occluded images (as in ``face_tid_mid``; a leading ``loose_crop/`` or any
        directory part is ignored).
    mode : {"images", "templates"}
        ``"images"``: templates are rebuilt from their occluded images only; templates with no
        occluded image and the pairs using them are dropped (both sides of every kept pair are
        occluded faces). ``"templates"``: templates keep all their images; only pairs where at
        least one template contains an occluded image are kept.

    Returns
    -------
    sub : IJBCMeta
        The restricted protocol.
    keep : np.ndarray of int
        Indices of ``sub``'s images in ``meta`` (so features computed on ``meta`` can be reused:
        ``feats[keep]``).
    """
    if mode not in ("images", "templates"):
        raise ValueError(f"mode must be 'images' or 'templates', got {mode!r}")
    wanted = {os.path.basename(str(n)) for n in occluded}
    is_occ = np.array([os.path.basename(n) in wanted for n in meta.names], dtype=bool)
    unmatched = len(wanted) - len({os.path.basename(n) for n in np.array(meta.names)[is_occ]})
    if not is_occ.any():
        raise ValueError("none of the listed occluded images is in the IJB protocol")
    if unmatched:
        log.warning("%d listed occluded images are not in the protocol", unmatched)
    occ_templates = np.unique(meta.templates[is_occ])
    if mode == "images":
        keep = np.flatnonzero(is_occ)
        pair_ok = np.isin(meta.pair_t1, occ_templates) & np.isin(meta.pair_t2, occ_templates)
    else:
        keep = np.arange(len(meta))
        pair_ok = np.isin(meta.pair_t1, occ_templates) | np.isin(meta.pair_t2, occ_templates)
    if not pair_ok.any():
        raise ValueError("no template pair is left in the occluded subset")
    sub = meta.subset_images(keep)
    sub = dataclasses.replace(sub, pair_t1=meta.pair_t1[pair_ok], pair_t2=meta.pair_t2[pair_ok],
                              pair_label=meta.pair_label[pair_ok])
    return sub, keep


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
