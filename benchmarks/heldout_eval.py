"""Any recognizers under the held-out protocol, side by side: threshold on fold 6, test folds 7–9.

    python benchmarks/heldout_eval.py --aligned_dir runs/lfw112 \\
        --models "occface demo=saved_models/lcd_ir18_w16_lfw,insightface MBF=runs/mbf/model.keras" \\
        --output benchmarks/results/heldout_demo.json

The protocol of ``REPRODUCTION.md`` (:func:`occface.evaluation.heldout.heldout_evaluation`):
LFW fold 6 (0-based) fixes each model's decision threshold (best clean accuracy there); folds 7–9
are read once, clean and with the second face of every pair occluded (MaskTheFace mask,
sunglasses, upper half, lower half, random block; occlusion seeds 0–2). Per condition: accuracy at
the fold-6 threshold, 3-fold CV accuracy, TAR@FAR=1e-2 (900 impostor pairs: one false accept is
1.1e-3) and the mean genuine / impostor cosine. A model that trained on people of folds 6–9 is
not held out here: say so beside its row. Any form ``occface.evaluation.load_embedding_model``
reads (``.keras``, a training ``model_dir``, an ``embed`` SavedModel; flip-test as the model
does it). Writes the JSON and a ``.md`` table beside it.
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

CONDITIONS = ("none", "mask", "sunglasses", "upper", "lower", "block")


def evaluate_model(path, aligned_dir, lfw_root, occlusion_seeds=(0, 1, 2)):
    """:func:`~occface.evaluation.heldout.heldout_evaluation` of one model, with its seconds."""
    from occface.evaluation import (EmbeddingCache, FaceSource, lfw_pair_set,
                                    load_embedding_model)
    from occface.evaluation.heldout import heldout_evaluation
    t0 = time.time()
    model = load_embedding_model(path)
    pairs = lfw_pair_set(lfw_root, image_root=aligned_dir)
    cache = EmbeddingCache(model, FaceSource(mode="aligned", size=112))
    out = heldout_evaluation(cache, pairs, occlusions=CONDITIONS,
                             occlusion_seeds=tuple(occlusion_seeds))
    out.update(model=str(path), seconds=time.time() - t0)
    return out


def markdown(rows):
    """One line per model: accuracy (%) at the fold-6 threshold per condition, TAR, impostors."""
    lines = ["| model | threshold | clean | " + " | ".join(CONDITIONS[1:])
             + " | occluded (mean) | clean TAR@FAR=1e-2 | impostor cosine |",
             "|---|---:|" + "---:|" * (len(CONDITIONS) + 3)]
    for name, r in rows.items():
        acc = {c: 100 * r["test"][c]["mean"]["accuracy"] for c in CONDITIONS}
        occ = sum(acc[c] for c in CONDITIONS[1:]) / (len(CONDITIONS) - 1)
        lines.append(f"| {name} | {r['threshold']:.4f} | "
                     + " | ".join(f"{acc[c]:.2f}" for c in CONDITIONS)
                     + f" | {occ:.2f} | {100 * r['test']['none']['mean']['tar_at_far']:.1f} | "
                       f"{r['test']['none']['mean']['mean_impostor_cosine']:.3f} |")
    return "\n".join(lines) + "\n"


def main():
    from benchmarks.model_table import run
    run("heldout_eval", __doc__.splitlines()[0],
        lambda path, args: evaluate_model(path, args.aligned_dir, args.lfw_root), markdown)


if __name__ == "__main__":
    main()
