"""One call from "a model and a benchmark" to a report: the logic behind ``tools/evaluate.py``.

:func:`run_evaluation` evaluates a model on one protocol under one or more occlusion conditions
and returns a JSON-able report; :func:`format_table` renders it as the papers' tables and
:func:`plot_roc` draws the ROC curves (matplotlib optional).
"""

import logging
import math
import pathlib
import time

import numpy as np

from occface.evaluation.embedding import as_embedding_model, embed_images
from occface.evaluation.identification import megaface_rank1
from occface.evaluation.metrics import DEFAULT_FARS
from occface.evaluation.occlusion import OCCLUSION_KINDS
from occface.evaluation.protocols import (IMAGE_EXTENSIONS, LFW_FARS, EmbeddingCache, FaceSource,
                                          bin_pair_set, evaluate_pairs, lfw_pair_set, list_images,
                                          read_pair_list)

__all__ = ["PROTOCOLS", "DEFAULT_DATA_DIRS", "run_evaluation", "format_table", "plot_roc",
           "parse_occlusions", "check_protocol_options"]

log = logging.getLogger(__name__)

PROTOCOLS = ("lfw", "bin", "ijbc", "megaface", "pairs", "rmfrd")
#: Protocols whose data directory defaults to the shared data (``<data_root>/<name>``).
DEFAULT_DATA_DIRS = {"lfw": "lfw", "rmfrd": "rmfrd_subset"}


def parse_occlusions(text):
    """``"none,mask"`` -> ``["none", "mask"]`` (``"all"`` = every kind), validated."""
    if isinstance(text, (list, tuple)):
        kinds = list(text)
    else:
        kinds = [k.strip() for k in str(text).split(",") if k.strip()]
    if kinds == ["all"]:
        kinds = list(OCCLUSION_KINDS)
    if not kinds:
        raise ValueError("no occlusion kind given")
    for k in kinds:
        if k not in OCCLUSION_KINDS:
            raise ValueError(f"unknown occlusion {k!r}; choose from {', '.join(OCCLUSION_KINDS)} "
                             "(comma-separated) or 'all'")
    return list(dict.fromkeys(kinds))


def _default_data_dir(protocol):
    if protocol not in DEFAULT_DATA_DIRS:
        raise ValueError(f"--data_dir is required for protocol {protocol!r}")
    from occface.paths import data_root
    return data_root() / DEFAULT_DATA_DIRS[protocol]


def check_protocol_options(protocol, occlusions=("none",), max_pairs=None):
    """Reject option combinations a protocol cannot honour (cheap: no data, no model).

    ``rmfrd`` measures real masks on every pair: synthetic ``occlusions`` other than ``"none"``
    and ``max_pairs`` are errors (``occlude`` is ignored, as for any clean condition).

    Raises
    ------
    ValueError
        Naming the protocol and the option.
    """
    if protocol != "rmfrd":
        return
    occlusions = parse_occlusions(occlusions)
    if occlusions != ["none"]:
        raise ValueError(f"protocol 'rmfrd' has real masks, synthetic occlusion does not apply: "
                         f"--occlusion must be 'none', got {','.join(occlusions)!r}")
    if max_pairs is not None:
        raise ValueError("protocol 'rmfrd' always evaluates every pair: --max_pairs is not "
                         "supported")


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
        (:func:`check_protocol_options`); ``fars`` default ``(1e-2, 1e-3)``; ``align="aligned"``
        skips detection.
    occlusions : sequence of str
        Conditions, each a kind of :data:`OCCLUSION_KINDS` (``"none"`` = clean).
    occlude : {"both", "one"}
        Occlude both images of a pair, or only the probe side.
    align : {"detect", "aligned"}
        How image files become faces for ``pairs``/``megaface`` (detect + align, or already
        aligned). For ``lfw``, giving ``aligned_dir`` (an aligned tree with LFW's layout) means
        "aligned".
    fars : sequence of float, optional
        TAR@FAR targets (default 1e-3..1e-1 for pairs, 1e-6..1e-1 for IJB-C).
    use_faceness, occluded_list, occluded_mode, ijbc_target
        IJB-C options (see :mod:`occface.evaluation.ijbc`).
    max_pairs : int, optional
        Quick runs: evaluate a stratified subset of this many pairs.
    progress_factory : callable, optional
        ``progress_factory(total=..., desc=...)`` -> object with ``update(n)`` and ``close()``.
    rmfrd_fallback : {"resize", "center"}
        ``rmfrd``: face of a crop without a detection (:data:`occface.evaluation.rmfrd.FALLBACKS`).

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
    data_dir = pathlib.Path(data_dir) if data_dir else _default_data_dir(protocol)
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
        from occface.evaluation.rmfrd import RMFRD_FARS, evaluate_rmfrd
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
    from occface.evaluation.ijbc import (evaluate_ijbc_features, ijbc_image_features,
                                         occluded_subset, read_ijbc, read_image_list)
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
        imgs = np.stack([dsource._load(k)[0] for k in distractor_keys[s:s + 1024]])
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


def _condition_name(res):
    if res.get("protocol") == "rmfrd":
        return "masked vs unmasked"
    name = "clean" if res["occlusion"] == "none" else f"{res['occlusion']} ({res['occlude']})"
    if res.get("subset", "all") != "all":
        name += f" [{res['subset']}]"
    return name


def _fmt_far(key):
    f = float(key)
    exp = math.log10(f) if f > 0 else None
    return f"1e{int(round(exp))}" if exp is not None and abs(exp - round(exp)) < 1e-9 else key


def format_table(report):
    """The report as a plain-text table (accuracy ± std, TAR@FAR columns, AUC, robustness)."""
    conds = report["conditions"]
    lines = [f"protocol {report['protocol']}  model {report['model'].get('source')}  "
             f"flip {report['flip']}  seed {report['seed']}"]
    if report["protocol"] == "megaface":
        lines.append(f"{'condition':<24s} {'rank-1 (%)':>10s} {'pairs':>8s} {'distractors':>12s}")
        for r in conds:
            lines.append(f"{_condition_name(r):<24s} {100 * r['rank1']:10.2f} {r['n_pairs']:8d} "
                         f"{r['n_distractors']:12d}")
        return "\n".join(lines)
    if report["protocol"] == "rmfrd":
        return "\n".join(lines + _rmfrd_rows(conds))
    fars = list(conds[0]["tar_at_far"])
    head = f"{'condition':<34s}"
    if report["protocol"] != "ijbc":
        head += f" {'accuracy (%)':>16s}"
    head += "".join(f" {'TAR@' + _fmt_far(f):>10s}" for f in fars) + f" {'AUC':>7s}"
    if report["protocol"] != "ijbc":
        head += f" {'R (Eq.8)':>9s}"
    lines.append(head)
    for r in conds:
        row = f"{_condition_name(r):<34s}"
        if report["protocol"] != "ijbc":
            row += f" {100 * r['accuracy']:8.2f} ± {100 * r['std']:5.2f}"
        row += "".join(f" {100 * r['tar_at_far'][f]:10.2f}" for f in fars)
        row += f" {r['auc']:7.4f}"
        if report["protocol"] != "ijbc":
            rob = r.get("feature_robustness")
            row += f" {rob:9.4f}" if rob is not None else f" {'-':>9s}"
        lines.append(row)
    pts = [p for r in conds for p in r.get("operating_points", []) if p["below_resolution"]]
    if pts:
        lines.append(f"(TAR at FAR < 1/N_impostor = {1 / pts[0]['n_neg']:.2g} is the TAR at FAR 0)")
    return "\n".join(lines)


def _rmfrd_rows(conds):
    fars = list(conds[0]["tar_at_far"])
    head = (f"{'condition':<24s} {'balanced acc (%)':>16s}"
            + "".join(f" {'TAR@' + _fmt_far(f):>10s}" for f in fars)
            + f" {'rank-1 (%)':>10s} {'fallbacks':>9s}")
    rows = [head]
    for r in conds:
        rows.append(f"{_condition_name(r):<24s} "
                    f"{100 * r['accuracy']:8.2f} ± {100 * r['std']:5.2f}"
                    + "".join(f" {100 * r['tar_at_far'][f]:10.2f}" for f in fars)
                    + f" {100 * r['rank1']:10.2f} {r['n_fallback']:9d}")
        rows.append(f"({r['n_probes']} masked probes x {r['n_gallery']} unmasked: "
                    f"{r['n_genuine']:,} genuine / {r['n_impostor']:,} impostor pairs, FAR "
                    f"resolution 1/{r['n_impostor']:,}; balanced set {r['n_balanced_pairs']:,} "
                    f"pairs in {r['n_folds']} folds by probe;")
        rows.append(f" no face found in {r['n_fallback_probes']} masked + "
                    f"{r['n_fallback_gallery']} unmasked crops, fallback {r['fallback']})")
    return rows


def plot_roc(report, path):
    """Plot every condition's ROC curve to ``path``.

    Raises
    ------
    ImportError
        matplotlib is not installed (it is an optional extra: ``pip install occface[plot]``).
    ValueError
        The report has no ROC curves (MegaFace).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = [(r, r["roc"]) for r in report["conditions"] if "roc" in r]
    if not curves:
        raise ValueError(f"protocol {report['protocol']} has no ROC curve to plot")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r, c in curves:
        fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
        ok = fpr > 0
        ax.plot(fpr[ok], tpr[ok], label=f"{_condition_name(r)} (AUC {r['auc']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{report['protocol']}: {report['model'].get('source')}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def accuracy_plot_path(roc_path):
    """Where :func:`plot_condition_accuracy` goes beside a ROC plot: ``roc.png`` →
    ``roc_accuracy.png``."""
    path = pathlib.Path(roc_path)
    return path.with_name(f"{path.stem}_accuracy{path.suffix or '.png'}")


def plot_condition_accuracy(report, path):
    """Bar chart of every condition's accuracy (clean, mask, sunglasses, block …) to ``path``.

    One bar per condition of ``report["conditions"]`` in the report's order: verification
    accuracy (with its ± std over folds as an error bar) where the protocol has one, else
    MegaFace rank-1; the value is written above each bar.

    Returns
    -------
    dict
        ``path``; ``size`` ``(width, height)`` in pixels; ``metric`` (``"accuracy"`` or
        ``"rank1"``); ``bars``: list of ``{"label", "value", "box"}`` with the bar's pixel box
        ``(x0, y0, x1, y1)`` (y down, as in the PNG).

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        No condition has an accuracy or rank-1 (e.g. IJB-C, which reports TAR@FAR).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    conds = report["conditions"]
    metric = next((m for m in ("accuracy", "rank1") if any(m in r for r in conds)), None)
    if metric is None:
        raise ValueError(f"protocol {report['protocol']} reports no accuracy to plot")
    rows = [r for r in conds if metric in r]
    labels = [_condition_name(r) for r in rows]
    values = np.array([100 * r[metric] for r in rows])
    errors = np.array([100 * r.get("std", 0.0) for r in rows])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 4.5), dpi=120)
    colours = ["#4c72b0" if r.get("occlusion", "none") == "none" else "#dd8452" for r in rows]
    bars = ax.bar(np.arange(len(rows)), values, yerr=errors if errors.any() else None,
                  color=colours, capsize=4, width=0.65)
    for x, v in enumerate(values):
        ax.text(x, v + max(errors.max(), 0) + 1, f"{v:.1f}", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(np.arange(len(rows)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)" if metric == "accuracy" else "rank-1 (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(f"{report['protocol']}: {report['model'].get('source')}", fontsize=9)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    boxes = []
    for label, value, bar in zip(labels, values, bars):
        bb = bar.get_window_extent()
        boxes.append({"label": label, "value": float(value),
                      "box": (int(round(bb.x0)), int(round(height - bb.y1)),
                              int(round(bb.x1)), int(round(height - bb.y0)))})
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"path": str(path), "size": (width, height), "metric": metric, "bars": boxes}
