"""One call from "a model and a benchmark" to a report: the logic behind ``tools/evaluate.py``.

:func:`run_evaluation` evaluates a model on one protocol under one or more occlusion conditions
(the condition loop of each protocol) and returns a JSON-able report. Its options are checked by
:mod:`~occface.evaluation.run_options`; :func:`~occface.evaluation.report_table.format_table`
renders the report as the papers' tables and :mod:`~occface.evaluation.plots` draws it
(matplotlib optional).
"""

import logging
import pathlib
import time

import numpy as np

from occface.data.folders import IMAGE_EXTENSIONS
from occface.evaluation.embedding import as_embedding_model, embed_images
from occface.evaluation.identification import megaface_rank1
from occface.evaluation.protocols import (LFW_FARS, EmbeddingCache, FaceSource, bin_pair_set,
                                          evaluate_pairs, lfw_pair_set, list_images,
                                          read_pair_list)
from occface.evaluation.roc import DEFAULT_FARS
from occface.evaluation.run_options import (PROTOCOLS, check_protocol_options, default_data_dir,
                                            parse_occlusions)

__all__ = ["run_evaluation"]

log = logging.getLogger(__name__)


def _subsample_pairs(pairs, max_pairs, seed):
    """Keep ``max_pairs`` pairs spread over every fold and both labels (quick runs only)."""
    from occface.evaluation.protocols import PairSet
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero((pairs.folds == f) & (pairs.issame == s))
              for f in np.unique(pairs.folds) for s in (True, False)]
    per = max(1, max_pairs // len(groups))
    keep = np.sort(np.concatenate([rng.permutation(g)[:per] for g in groups]))
    return PairSet([pairs.keys_a[i] for i in keep], [pairs.keys_b[i] for i in keep],
                   pairs.issame[keep], pairs.folds[keep], pairs.name + f"[{keep.size} pairs]")


def _pair_protocol(protocol, data_dir, align, aligned_dir, pairs_file, align_size, cache_dir):
    if protocol == "lfw":
        pairs = lfw_pair_set(data_dir, pairs_file=pairs_file, image_root=aligned_dir)
        mode = "aligned" if aligned_dir else "detect"
        return pairs, FaceSource(mode, size=align_size, cache_dir=cache_dir)
    if protocol == "bin":
        from occface.data import load_verification_bin
        path = pathlib.Path(data_dir)
        if not path.is_file():
            raise FileNotFoundError(f".bin file not found: {path}")
        images, issame = load_verification_bin(path)
        return (bin_pair_set(len(images), issame, name=f"bin:{path.name}"),
                FaceSource("array", size=images.shape[1], images=images))
    pairs = read_pair_list(data_dir)
    return pairs, FaceSource(align, size=align_size, cache_dir=cache_dir)


def _identity_tree(root):
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"probe directory not found: {root}")
    keys, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                keys.append(str(f))
                labels.append(sub.name)
    if not keys:
        raise ValueError(f"no images in identity folders under {root}")
    return keys, np.array(labels)


def run_evaluation(model, protocol="lfw", data_dir=None, occlusions=("none",), occlude="both",
                   seed=0, flip=False, batch_size=64, align="detect", aligned_dir=None,
                   pairs_file="pairs.txt", align_size=112, cache_dir=None, fars=None,
                   ijbc_target="ijbc", use_faceness=False, occluded_list=None,
                   occluded_mode="images", max_pairs=None, progress_factory=None,
                   rmfrd_fallback="resize"):
    """Evaluate ``model`` on ``protocol`` for every occlusion condition.

    Parameters
    ----------
    model : EmbeddingModel, keras.Model or path
    protocol : {"lfw", "bin", "ijbc", "megaface", "pairs", "rmfrd"}
        ``lfw``: ``data_dir`` is the LFW root (``pairs.txt``, ``lfw-deepfunneled/``; default the
        shared data). ``bin``: an insightface ``.bin`` file. ``ijbc``: an IJB release root.
        ``megaface``: a directory with ``probes/<identity>/*`` and ``distractors/**``.
        ``pairs``: a pair list ``<a> <b> <0|1> [<fold>]``. ``rmfrd``: real masked probes vs
        unmasked gallery (:mod:`occface.evaluation.rmfrd`; ``data_dir`` defaults to the shared
        ``rmfrd_subset``); only ``occlusions=("none",)``, no ``max_pairs``
        (:func:`~occface.evaluation.run_options.check_protocol_options`); ``fars`` default
        ``(1e-2, 1e-3)``; ``align="aligned"`` skips detection.
    occlusions : sequence of str
        Conditions, each a kind of ``OCCLUSION_KINDS`` (``"none"`` = clean).
    occlude : {"both", "one"}
        Occlude both images of a pair, or only the probe side.
    align : {"detect", "aligned"}
        How image files become faces for ``pairs``/``megaface`` (detect + align, or already
        aligned). For ``lfw``, giving ``aligned_dir`` (an aligned tree with LFW's layout) means
        "aligned".
    fars : sequence of float, optional
        TAR@FAR targets (default 1e-3..1e-1 for pairs, 1e-6..1e-1 for IJB-C).
    use_faceness, occluded_list, occluded_mode, ijbc_target
        IJB-C options (see :mod:`occface.evaluation.ijbc`,
        :mod:`occface.evaluation.ijbc_templates`).
    max_pairs : int, optional
        Quick runs: evaluate a stratified subset of this many pairs.
    progress_factory : callable, optional
        ``progress_factory(total=..., desc=...)`` -> object with ``update(n)`` and ``close()``.
    rmfrd_fallback : {"resize", "center"}
        ``rmfrd``: face of a crop without a detection
        (:data:`occface.evaluation.rmfrd_data.FALLBACKS`).

    Returns
    -------
    dict
        ``protocol``, ``model``, ``conditions`` (one result dict per occlusion), ``faces``
        (loading statistics), ``seconds``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if occlude not in ("both", "one"):
        raise ValueError(f"occlude must be 'both' or 'one', got {occlude!r}")
    if align not in ("detect", "aligned"):
        raise ValueError(f"align must be 'detect' or 'aligned', got {align!r}")
    occlusions = parse_occlusions(occlusions)
    check_protocol_options(protocol, occlusions, max_pairs)
    data_dir = pathlib.Path(data_dir) if data_dir else default_data_dir(protocol)
    if not data_dir.exists():
        raise FileNotFoundError(f"data not found: {data_dir}")
    t0 = time.monotonic()
    model = as_embedding_model(model)
    report = {"protocol": protocol, "data_dir": str(data_dir), "model": model.describe(),
              "occlusions": occlusions, "occlude": occlude, "seed": seed, "flip": flip}
    if protocol == "ijbc":
        report.update(_run_ijbc(model, data_dir, occlusions, seed, flip, batch_size, align_size,
                                fars or DEFAULT_FARS, ijbc_target, use_faceness, occluded_list,
                                occluded_mode, progress_factory))
    elif protocol == "rmfrd":
        from occface.evaluation.rmfrd import evaluate_rmfrd
        from occface.evaluation.rmfrd_protocol import RMFRD_FARS
        res = evaluate_rmfrd(model, data_dir, flip=flip, seed=seed, fars=fars or RMFRD_FARS,
                             batch_size=batch_size, cache_dir=cache_dir, fallback=rmfrd_fallback,
                             align=align, progress_factory=progress_factory)
        report["faces"] = res.pop("faces")
        report["conditions"] = [res]
        report["n_pairs"] = res["n_pairs"]
    elif protocol == "megaface":
        report.update(_run_megaface(model, data_dir, occlusions, occlude, seed, flip, batch_size,
                                    align, align_size, cache_dir, progress_factory))
    else:
        pairs, source = _pair_protocol(protocol, data_dir, align, aligned_dir, pairs_file,
                                       align_size, cache_dir)
        pairs = _subsample_pairs(pairs, max_pairs, seed)
        keys = pairs.unique_keys()
        bar = progress_factory(total=len(keys), desc="load faces ") if progress_factory else None
        source.preload(keys, progress=bar.update if bar else None)
        if bar is not None:
            bar.close()
        cache = EmbeddingCache(model, source, batch_size, progress_factory)
        report["conditions"] = [
            evaluate_pairs(cache, pairs, occ, occlude, seed, flip, fars or LFW_FARS)
            for occ in occlusions]
        report["faces"] = {"mode": source.mode, "size": source.size, **source.stats}
        report["n_pairs"] = len(pairs)
    model_desc = model.describe()
    report["model"] = model_desc
    report["seconds"] = round(time.monotonic() - t0, 2)
    return report


def _run_ijbc(model, root, occlusions, seed, flip, batch_size, size, fars, target, use_faceness,
              occluded_list, occluded_mode, progress_factory):
    from occface.evaluation.ijbc import occluded_subset, read_ijbc, read_image_list
    from occface.evaluation.ijbc_images import ijbc_image_features
    from occface.evaluation.ijbc_templates import evaluate_ijbc_features
    meta = read_ijbc(root, target=target)
    subset = None
    if occluded_list:
        subset = occluded_subset(meta, read_image_list(occluded_list), mode=occluded_mode)
    conditions = []
    for occ in occlusions:
        bar = (progress_factory(total=len(meta), desc=f"embed {occ:<10s}")
               if progress_factory else None)
        feats = ijbc_image_features(model, meta, batch_size, flip, occ, seed,
                                    bar.update if bar else None, size)
        if bar is not None:
            bar.close()
        variants = [("all", meta, feats)]
        if subset is not None:
            variants.append((f"occluded_subset:{occluded_mode}", subset[0], feats[subset[1]]))
        for name, m, f in variants:
            res = evaluate_ijbc_features(f, m, fars, use_faceness=use_faceness)
            res.pop("scores")
            res.update({"occlusion": occ, "occlude": "all" if occ != "none" else "none",
                        "subset": name, "seed": seed, "flip": flip})
            conditions.append(res)
    return {"conditions": conditions, "target": target}


def _run_megaface(model, root, occlusions, occlude, seed, flip, batch_size, align, size, cache_dir,
                  progress_factory):
    probe_keys, labels = _identity_tree(root / "probes")
    distractor_keys = list_images(root / "distractors")
    if not distractor_keys:
        raise ValueError(f"no distractor images under {root / 'distractors'}")
    source = FaceSource(align, size=size, cache_dir=cache_dir)
    bar = progress_factory(total=len(probe_keys), desc="load faces ") if progress_factory else None
    source.preload(probe_keys, progress=bar.update if bar else None)
    if bar is not None:
        bar.close()
    cache = EmbeddingCache(model, source, batch_size, progress_factory)
    # Distractors: streamed from disk in chunks, embedded once, clean in every condition.
    dfeats = []
    bar = progress_factory(total=len(distractor_keys), desc="distractors") \
        if progress_factory else None
    dsource = FaceSource(align, size=size)
    for s in range(0, len(distractor_keys), 1024):
        imgs = np.stack([dsource.load(k)[0] for k in distractor_keys[s:s + 1024]])
        dfeats.append(embed_images(model, imgs, batch_size, flip,
                                   progress=bar.update if bar else None))
    if bar is not None:
        bar.close()
    conditions = []
    for occ in occlusions:
        clean = cache.get(probe_keys, "none", seed, flip)
        probe = cache.get(probe_keys, occ, seed, flip) if occ != "none" else clean
        gallery = probe if (occ != "none" and occlude == "both") else clean
        res = megaface_rank1(probe, labels, iter(dfeats), gallery_feats=gallery)
        res.pop("per_probe_success")
        res.update({"occlusion": occ, "occlude": occlude if occ != "none" else "none",
                    "seed": seed, "flip": flip, "n_probe_images": len(probe_keys),
                    "n_identities": int(np.unique(labels).size)})
        conditions.append(res)
    return {"conditions": conditions,
            "faces": {"mode": source.mode, "size": source.size, **source.stats}}
