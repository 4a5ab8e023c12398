"""Does every recognizer variant train like the baseline? (issue: "the lcd variant must train")

Trains each variant of ``build_recognizer`` for the same steps on the same real faces (LFW
identities of folds 1-7 with >= 3 images, aligned by tools/prepare_dataset.py), same seed, same
data order, and prints the ArcFace-loss curves side by side, plus at the end:

* verification accuracy on the identity-disjoint LFW folds 8-10 (10-fold protocol over their pairs),
* the mean cosine similarity between embeddings of *different* people (an embedding collapse —
  the failure measured with literal SR sums and a plain sigmoid SAM — shows as a value near 1).

    python benchmarks/variant_training.py --data_dir runs/lfw112 --steps 400

Writes benchmarks/results/variant_training.json.
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from occface.models import VARIANTS  # noqa: E402
from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "variant_training.json"


def _inference_mode_loss(cfg, model, head, batches):
    """Mean ArcFace loss of the trained model on the first training batches, with LCD / SR /
    SAM-free inference behaviour (``training=False``): the loss the logged curve would show if
    the dropout layers were switched off. Same batches for every variant (same seed)."""
    from occface.losses import arcface_loss
    from occface.train.recognizer import training_data
    dataset, _ = training_data(cfg, cfg.batch_size, cfg.seed)
    losses = []
    for batch in dataset.take(batches):
        images, labels = batch[0], batch[1]  # further elements (skip counter) are not needed
        emb = model(images, training=False)
        logits = head([emb, labels], training=False)
        losses.append(float(arcface_loss(labels, logits)))
    return float(np.mean(losses))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="runs/lfw112", help="aligned LFW tree")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--input_size", type=int, default=64)
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--interval", type=int, default=25, help="curve resolution (steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_batches", type=int, default=8,
                        help="training batches on which the final ArcFace loss is also measured "
                             "with every dropout layer in inference mode")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    from occface.train import RecognizerConfig, train_recognizer
    from occface.train.validation import PairsValidator

    pairs = str(data_root() / "lfw" / "pairs.txt")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    validator = None
    rows, curves = {}, {}
    work = pathlib.Path(tempfile.mkdtemp(prefix="variant_training_"))
    try:
        for variant in variants:
            cfg = RecognizerConfig(
                data_dir=args.data_dir, input_size=args.input_size, lfw_pairs=pairs,
                train_folds=tuple(range(7)), min_images_per_identity=3, variant=variant,
                depth=args.depth, width=args.width, embedding_size=512, optimizer="sgd",
                learning_rate=args.learning_rate, momentum=0.9, weight_decay=5e-4,
                lr_schedule="constant", warmup_steps=min(100, args.steps // 4),
                warmup_start=0.01, batch_size=args.batch_size, steps=args.steps,
                model_dir=str(work / variant), checkpoint_interval=10 ** 9,
                summary_interval=args.interval, seed=args.seed, val_pairs=pairs,
                val_folds=(7, 8, 9), val_occlusions=("none",))
            if validator is None:
                from occface.train.recognizer import validation_sets
                validator = PairsValidator(validation_sets(cfg), batch_size=128)
            started = time.monotonic()
            result = train_recognizer(cfg, validator=validator)
            seconds = time.monotonic() - started
            curves[variant] = [(h["step"], float(h["arcface"]), float(h["loss"]))
                               for h in result["history"]]
            model = result["model"]
            eval_loss = _inference_mode_loss(cfg, model, result["head"], args.eval_batches)
            pair_set = next(iter(validator.sets.values()))
            emb_a = np.array(model(pair_set.images_a[:600].astype(np.float32), training=False))
            emb_b = np.array(model(pair_set.images_b[:600].astype(np.float32), training=False))
            emb_a /= np.linalg.norm(emb_a, axis=1, keepdims=True)
            emb_b /= np.linalg.norm(emb_b, axis=1, keepdims=True)
            diff = ~pair_set.issame[:600]
            final_val = result["validation"][-1] if result["validation"] else {}
            rows[variant] = {
                "final_arcface_loss": curves[variant][-1][1],
                "final_total_loss": curves[variant][-1][2],
                "final_arcface_loss_inference_mode": eval_loss,
                "lfw_folds_8_10_accuracy": final_val.get("clean_acc"),
                "mean_cosine_different_people": float(np.mean(np.sum(emb_a[diff] * emb_b[diff],
                                                                      axis=1))),
                "images_per_sec": result["images_per_sec"],
                "seconds": seconds,
            }
            print(f"{variant}: {rows[variant]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nArcFace loss by step (same faces, same order, same seed)")
    print(f"{'step':>6} " + " ".join(f"{v:>10}" for v in variants))
    steps = [s for s, _, _ in curves[variants[0]]]
    for i, step in enumerate(steps):
        print(f"{step:>6} " + " ".join(f"{curves[v][i][1]:>10.3f}" for v in variants))
    print(f"\n{'variant':<10} {'loss':>8} {'ratio':>7} {'inf.loss':>9} {'ratio':>7} {'acc 8-10':>9} "
          f"{'cos diff':>9} {'img/s':>7}")
    first = rows.get("baseline", next(iter(rows.values())))
    base, base_inf = first["final_arcface_loss"], first["final_arcface_loss_inference_mode"]
    for v, row in rows.items():
        acc = row["lfw_folds_8_10_accuracy"]
        inf = row["final_arcface_loss_inference_mode"]
        print(f"{v:<10} {row['final_arcface_loss']:>8.3f} {row['final_arcface_loss'] / base:>7.3f} "
              f"{inf:>9.3f} {inf / base_inf:>7.3f} "
              f"{acc if acc is None else f'{acc:.4f}':>9} "
              f"{row['mean_cosine_different_people']:>9.3f} {row['images_per_sec']:>7.1f}")
    write_json(args.output, {**run_metadata(vars(args)), "rows": rows,
                         "curves": {v: [{"step": s, "arcface": a, "total": t} for s, a, t in c]
                                    for v, c in curves.items()}})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
