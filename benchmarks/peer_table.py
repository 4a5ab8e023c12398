"""Side by side, one run, occface's own evaluation: which model should a user pick?

    python benchmarks/peer_table.py --aligned_dir runs/lfw112 \
        --models "insightface MBF=runs/mbf/w600k_mbf.keras,occface demo=saved_models/lcd_ir18_w16_lfw"

For every model (any form ``occface.evaluation.load_embedding_model`` reads: ``.keras``, a
training ``model_dir`` or an ``embed`` SavedModel):

* LFW 10-fold, clean (all 6,000 pairs of ``pairs.txt``);
* LFW folds 7–9 (0-based), second face of each pair synthetically occluded (mask, sunglasses,
  block; occlusion seed 0), 3-fold CV accuracy and TAR@FAR=1e-2 over those 1,800 pairs;
* RMFRD real masked → unmasked (:mod:`occface.evaluation.rmfrd`): balanced accuracy,
  TAR@FAR=1e-2, rank-1.

No flip-test for any model. Writes ``benchmarks/results/peer_table.json`` and ``.md``.
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


RESULTS = pathlib.Path(__file__).resolve().parent / "results"
KINDS = ("mask", "sunglasses", "block")


def evaluate_model(path, aligned_dir, lfw_root, rmfrd_dir, folds=(7, 8, 9), kinds=KINDS):
    """The peer-table numbers of one model (see the module docstring)."""
    from occface.evaluation import (EmbeddingCache, FaceSource, evaluate_pairs, evaluate_rmfrd,
                                    lfw_pair_set, load_embedding_model)
    model = load_embedding_model(path)
    pairs = lfw_pair_set(lfw_root, image_root=aligned_dir)
    cache = EmbeddingCache(model, FaceSource(mode="aligned", size=112))
    out = {"model": str(path)}
    t0 = time.time()
    res = evaluate_pairs(cache, pairs, "none")
    out["lfw10_clean"] = {"accuracy": res["accuracy"], "std": res["std"]}
    keep = np.isin(pairs.folds, folds)
    sub = type(pairs)([k for k, m in zip(pairs.keys_a, keep) if m],
                      [k for k, m in zip(pairs.keys_b, keep) if m], pairs.issame[keep],
                      pairs.folds[keep] - min(folds), name="lfw folds 7-9")
    out["lfw_test_folds"] = {}
    for kind in ("none",) + tuple(kinds):
        r = evaluate_pairs(cache, sub, kind, occlude="one", seed=0, fars=(1e-2,),
                           robustness=False)
        out["lfw_test_folds"][kind] = {"accuracy": r["accuracy"], "std": r["std"],
                                       "tar_at_far_1e-2": r["tar_at_far"]["0.01"]}
    r = evaluate_rmfrd(model, rmfrd_dir)
    r.pop("roc", None)
    out["rmfrd"] = r
    out["seconds"] = time.time() - t0
    return out


def markdown(rows):
    lines = ["| model | LFW 10-fold | folds 7–9 clean | mask | sunglasses | block | "
             "RMFRD balanced acc | RMFRD TAR@FAR=1e-2 | RMFRD rank-1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        t = r["lfw_test_folds"]
        lines.append(
            f"| {name} | {100 * r['lfw10_clean']['accuracy']:.2f} % | "
            + " | ".join(f"{100 * t[k]['accuracy']:.2f} %" for k in ("none",) + KINDS)
            + f" | {100 * r['rmfrd']['accuracy']:.1f} % | "
              f"{100 * r['rmfrd']['tar_at_far']['0.01']:.1f} % | {100 * r['rmfrd']['rank1']:.1f} % |")
    return "\n".join(lines) + "\n"


def main():
    from benchmarks.model_table import run
    from occface.paths import data_root
    root = data_root(required=False)
    run("peer_table", __doc__.splitlines()[0],
        lambda path, args: evaluate_model(path, args.aligned_dir, args.lfw_root, args.rmfrd_dir),
        markdown, default_output=str(RESULTS / "peer_table.json"),
        extra_args=[("--rmfrd_dir", {"default": str(root / "rmfrd_subset") if root else None})])


if __name__ == "__main__":
    main()
