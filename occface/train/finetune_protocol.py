"""Data and scoring of the occlusion fine-tuning study (:mod:`occface.train.finetune`).

Splits (LFW ``pairs.txt``, 0-based folds; identities of different folds are disjoint):

* **train**: faces of the identities of ``train_folds`` (default 0–5) plus every identity in no
  pair — distillation needs no labels, so single-image people count too;
* **validation**: the pairs of ``val_fold`` (6) — picks the checkpoint and the threshold;
* **test**: the pairs of ``test_folds`` (7–9), clean and with the second face of every pair
  synthetically occluded (``eval_kinds``, occlusion seed 0); LFW 10-fold over all 6,000 pairs
  (folds 0–5 hold training people: reported as the usual LFW figure, optimistic for a
  fine-tuned model); RMFRD real masked → unmasked (:mod:`occface.evaluation.rmfrd`).

Every face goes through the frozen trunk once (:class:`~occface.train.finetune.FeatureCache`);
scoring a fine-tuned head costs a head forward pass per cached view.
"""

import dataclasses
import pathlib

import numpy as np

from occface.train.finetune import FeatureCache, embed_features, training_views

EVAL_KINDS = ("mask", "sunglasses", "block")


def _load_aligned(path):
    import cv2
    from occface.data import template_landmarks
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise ValueError(f"cannot read aligned face {path}")
    if bgr.shape[:2] != (112, 112):
        bgr = cv2.resize(bgr, (112, 112), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), template_landmarks(112)


@dataclasses.dataclass
class StudyData:
    """Cached trunk features of every view the study uses (see the module docstring)."""
    train_clean: np.ndarray
    train_occluded: np.ndarray
    occluded_index: np.ndarray
    pairs: object            # occface.evaluation.PairSet of LFW pairs.txt (aligned paths)
    lfw_index: dict          # aligned path -> row of lfw_clean
    lfw_clean: np.ndarray
    lfw_occluded: dict       # kind -> (features, {path: row})
    rmfrd: object
    rmfrd_probe: np.ndarray
    rmfrd_gallery: np.ndarray
    settings: dict


def prepare_study_data(trunk, model_id, aligned_dir, lfw_root, rmfrd_dir, cache_dir,
                       train_folds=tuple(range(6)), val_fold=6, test_folds=(7, 8, 9),
                       eval_kinds=EVAL_KINDS, max_train_images=6000, occluded_per_image=1,
                       seed=0, progress_factory=None):
    """Build (or read back) the feature caches of the study.

    Parameters
    ----------
    trunk : keras.Model
        Frozen part of the pretrained model, images → stage-3 features.
    model_id : str
        Identity of the trunk weights (cache key).
    aligned_dir : str or path
        LFW aligned at 112 px by ``tools/prepare_dataset.py`` (LFW layout).
    lfw_root, rmfrd_dir : str or path
        ``pairs.txt`` folder; the RMFRD subset.
    max_train_images : int or None
        Random subset (``seed``) of the training faces, to bound the cache cost.
    """
    from occface.data import lfw_training_identities
    from occface.evaluation.protocols import FaceSource, lfw_pair_set
    from occface.evaluation.rmfrd_data import crop_fallback, read_rmfrd

    aligned_dir, lfw_root = pathlib.Path(aligned_dir), pathlib.Path(lfw_root)
    if not aligned_dir.is_dir():
        raise FileNotFoundError(f"aligned LFW directory not found: {aligned_dir} (make it with "
                                f"tools/prepare_dataset.py --size 112)")
    cache = FeatureCache(cache_dir, trunk, model_id)

    def bar(total, desc):
        return progress_factory(total, desc).update if progress_factory else None

    people = lfw_training_identities(lfw_root, folds=train_folds, min_images=1,
                                     include_unpaired=True)
    paths = sorted(str(p) for name in people for p in (aligned_dir / name).glob("*.jpg"))
    if not paths:
        raise ValueError(f"no training faces under {aligned_dir} for the identities of folds "
                         f"{list(train_folds)}")
    rng = np.random.default_rng(seed)
    if max_train_images and len(paths) > max_train_images:
        paths = sorted(rng.choice(paths, max_train_images, replace=False).tolist())
    clean_views, occ_views = training_views(paths, seed, occluded_per_image)
    train_clean = cache.features("train_clean", clean_views, _load_aligned,
                                 bar(len(clean_views), "trunk: train clean"))
    train_occ = cache.features("train_occluded", occ_views, _load_aligned,
                               bar(len(occ_views), "trunk: train occluded"))
    index = {p: i for i, p in enumerate(paths)}
    occluded_index = np.array([index[p] for p, _, _ in occ_views])

    pairs = lfw_pair_set(lfw_root, image_root=aligned_dir)
    keys = pairs.unique_keys()
    lfw_clean = cache.features("lfw_clean", [(k, "none", 0) for k in keys], _load_aligned,
                               bar(len(keys), "trunk: LFW clean"))
    lfw_index = {k: i for i, k in enumerate(keys)}
    eval_folds = [val_fold] + list(test_folds)
    second = list(dict.fromkeys(b for b, f in zip(pairs.keys_b, pairs.folds) if f in eval_folds))
    lfw_occ = {}
    for kind in eval_kinds:
        feats = cache.features(f"lfw_{kind}", [(k, kind, 0) for k in second], _load_aligned,
                               bar(len(second), f"trunk: LFW {kind}"))
        lfw_occ[kind] = (feats, {k: i for i, k in enumerate(second)})

    rmfrd = read_rmfrd(rmfrd_dir)
    source = FaceSource(mode="detect", fallback=crop_fallback("resize"))

    def load_rmfrd(path):
        img, lmk, _ = source.get(path)
        return img, lmk

    probe = cache.features("rmfrd_probe", [(k, "none", 0) for k in rmfrd.probe_keys],
                           load_rmfrd, bar(len(rmfrd.probe_keys), "trunk: RMFRD masked"))
    gallery = cache.features("rmfrd_gallery", [(k, "none", 0) for k in rmfrd.gallery_keys],
                             load_rmfrd, bar(len(rmfrd.gallery_keys), "trunk: RMFRD unmasked"))
    settings = {"train_folds": list(train_folds), "val_fold": val_fold,
                "test_folds": list(test_folds), "eval_kinds": list(eval_kinds),
                "n_train_faces": len(paths), "n_train_identities_available": len(people),
                "occluded_per_image": occluded_per_image, "max_train_images": max_train_images,
                "aligned_dir": str(aligned_dir), "rmfrd_fallback": "resize",
                "rmfrd_detection_misses": source.stats.get("not_found")}
    return StudyData(train_clean, train_occ, occluded_index, pairs, lfw_index, lfw_clean,
                     lfw_occ, rmfrd, probe, gallery, settings)


class _Embeddings:
    """Head embeddings of cached rows, computed only for the rows a split needs."""

    def __init__(self, head, data):
        self.head, self.data, self._rows = head, data, {}

    def get(self, kind, keys):
        from occface.evaluation.similarity import l2_normalize
        if kind == "none":
            feats, index = self.data.lfw_clean, self.data.lfw_index
        else:
            feats, index = self.data.lfw_occluded[kind]
        rows = np.array([index[k] for k in keys])
        store = self._rows.setdefault(kind, {})
        todo = sorted(set(rows.tolist()) - set(store))
        if todo:
            emb = l2_normalize(embed_features(self.head, feats[np.array(todo)]))
            store.update(zip(todo, emb))
        return np.stack([store[r] for r in rows])

    def pair(self, idx, kind):
        pairs = self.data.pairs
        a = self.get("none", [pairs.keys_a[i] for i in idx])
        b = self.get(kind, [pairs.keys_b[i] for i in idx])
        return a, b


def evaluate_head(head, data, conditions=None, splits=("test", "lfw10", "rmfrd")):
    """Score a head on the cached views (validation always; ``splits`` on top).

    Returns
    -------
    dict
        ``validation``: per condition (``none`` + kinds) accuracy at the best threshold of fold
        ``val_fold`` and that threshold, ``validation_score`` their mean; ``test``: per
        condition accuracy at the validation clean threshold, 3-fold CV accuracy over the test
        folds, TAR@FAR=1e-2 (resolution 1/900), mean impostor / genuine cosine; ``lfw10``: clean
        10-fold accuracy over all pairs; ``rmfrd``: the
        :func:`~occface.evaluation.rmfrd_protocol.evaluate_rmfrd_features` numbers (without the
        ROC).
    """
    from occface.evaluation.roc import operating_point
    from occface.evaluation.similarity import pair_scores
    from occface.evaluation.verification import best_threshold, verification_accuracy
    conditions = conditions or ("none",) + tuple(data.lfw_occluded)
    emb = _Embeddings(head, data)
    folds, issame = data.pairs.folds, data.pairs.issame
    s = data.settings
    out = {}
    val_idx = np.flatnonzero(folds == s["val_fold"])
    val = {}
    for kind in conditions:
        a, b = emb.pair(val_idx, kind)
        th, acc = best_threshold(pair_scores(a, b), issame[val_idx])
        val[kind] = {"accuracy": float(acc), "threshold": float(th)}
    out["validation"] = val
    out["validation_score"] = float(np.mean([v["accuracy"] for v in val.values()]))
    if "test" in splits:
        threshold = val["none"]["threshold"]
        test_idx = np.flatnonzero(np.isin(folds, s["test_folds"]))
        test = {}
        for kind in conditions:
            a, b = emb.pair(test_idx, kind)
            scores, same = pair_scores(a, b), issame[test_idx]
            cv = verification_accuracy(scores, same, folds[test_idx] - min(s["test_folds"]))
            test[kind] = {"accuracy_at_val_threshold": float(np.mean((scores >= threshold)
                                                                     == same)),
                          "accuracy_cv": float(cv.accuracy),
                          "tar_at_far_1e-2": float(operating_point(scores, same, [1e-2])[0].tar),
                          "mean_impostor_cosine": float(scores[~same].mean()),
                          "mean_genuine_cosine": float(scores[same].mean())}
        test["threshold"] = threshold
        test["tar_far_resolution"] = 1.0 / int((~issame[test_idx]).sum())
        out["test"] = test
    if "lfw10" in splits:
        a, b = emb.pair(np.arange(len(issame)), "none")
        res = verification_accuracy(pair_scores(a, b), issame, folds)
        out["lfw10"] = {"accuracy": float(res.accuracy), "std": float(res.std)}
    if "rmfrd" in splits:
        from occface.evaluation.rmfrd_protocol import evaluate_rmfrd_features
        r = evaluate_rmfrd_features(embed_features(head, data.rmfrd_probe),
                                    embed_features(head, data.rmfrd_gallery), data.rmfrd)
        r.pop("roc", None)
        out["rmfrd"] = r
    return out


def teacher_and_data(onnx_path, aligned_dir, lfw_root, rmfrd_dir, cache_dir,
                     split_layer="stage3_block6_add", progress_factory=None, **data_kwargs):
    """The frozen pretrained model split at ``split_layer``, the study's caches and the targets.

    Returns
    -------
    teacher_head : keras.Model
    data : StudyData
    targets : np.ndarray, (N_train, D)
        L2-normalised teacher embeddings of the clean training faces.
    """
    import hashlib
    from occface.evaluation.similarity import l2_normalize
    from occface.models import import_onnx
    from occface.train.finetune import freeze_batchnorm, split_recognizer
    teacher = freeze_batchnorm(import_onnx(onnx_path))
    trunk, head = split_recognizer(teacher, split_layer)
    with open(onnx_path, "rb") as f:
        model_id = hashlib.sha256(f.read()).hexdigest() + ":" + split_layer
    data = prepare_study_data(trunk, model_id, aligned_dir, lfw_root, rmfrd_dir, cache_dir,
                              progress_factory=progress_factory, **data_kwargs)
    targets = l2_normalize(embed_features(head, data.train_clean))
    return head, data, targets


def run_arm(onnx_path, data, teacher_head, targets, config, log_fn=None):
    """One run of the study: build the student, fine-tune (unless ``pretrained``), score it.

    Returns
    -------
    model : keras.Model
        The full student (trunk + fine-tuned head), images → embeddings.
    result : dict
        ``arm``, ``seed``, ``recipe`` (the config), ``training`` (losses, validation curve,
        best step, images/s) and the :func:`evaluate_head` metrics.
    """
    from occface.models import import_onnx
    from occface.train.finetune import freeze_batchnorm, split_recognizer, train_head
    result = {"arm": config.arm, "seed": config.seed, "recipe": dataclasses.asdict(config)}
    if config.arm == "pretrained":
        model = import_onnx(onnx_path)
        result.update(evaluate_head(teacher_head, data))
        return model, result
    variant_args = dict(variant="cd", lcd_min_rate=config.lcd_min_rate,
                        lcd_max_rate=config.lcd_max_rate, seed=config.seed) if config.lcd \
        else dict(variant="baseline")
    model = freeze_batchnorm(import_onnx(onnx_path, lcd_position="output", **variant_args))
    _, head = split_recognizer(model, config.split_layer)

    def validate(h):
        return evaluate_head(h, data, splits=())["validation_score"]

    result["training"] = train_head(head, config, data.train_clean, data.train_occluded,
                                    targets, data.occluded_index, validate, log_fn=log_fn)
    result.update(evaluate_head(head, data))
    return model, result
