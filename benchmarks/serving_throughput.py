"""Embeddings per second: exported SavedModel (`embed` signature) vs the in-process Keras model.

Both paths do the same work — uint8 aligned faces in, resize to the model's input size, flip-test,
L2-normalised embeddings out — the Keras side through the same graph function the export traces
(`occface.serving.make_embed_fn`, wrapped in `tf.function`). Batches of 1 and 64, repeats
interleaved so drift on a shared machine hits both sides alike.

    python benchmarks/serving_throughput.py [--model saved_models/lcd_ir18_w16_lfw/keras/model.keras]

Without --model a freshly initialised IR-18 (width 16, 64x64 input) is used. Prints a table and
writes benchmarks/results/serving_throughput.json.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from occface.serving import export_model, make_embed_fn  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "serving_throughput.json"


def _time(fn, batch, repeats):
    fn(batch)  # warm-up / trace
    start = time.perf_counter()
    for _ in range(repeats):
        fn(batch)
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=".keras file or training model_dir")
    parser.add_argument("--batch_sizes", default="1,64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds_per_round", type=float, default=2.0)
    args = parser.parse_args()

    if args.model:
        from occface.models.io import load_keras_model
        model = load_keras_model(args.model)
    else:
        from occface.models import build_recognizer
        model = build_recognizer(depth=18, variant="lcd", input_shape=(64, 64, 3), width=16,
                                 seed=0)
    keras_embed = tf.function(make_embed_fn(model, flip_test=True), reduce_retracing=True)

    with tempfile.TemporaryDirectory() as tmp:
        vdir = export_model(pathlib.Path(tmp) / "m", kind="embed", recognizer=model,
                            threshold=0.3)
        loaded = tf.saved_model.load(str(vdir))
        signature = loaded.signatures["embed"]

        def saved_embed(batch):
            return signature(images=batch)["embeddings"]

        rows = {}
        rng = np.random.default_rng(0)
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            batch = tf.constant(rng.integers(0, 256, (bs, 112, 112, 3), dtype=np.uint8))
            np.testing.assert_allclose(saved_embed(batch).numpy(), keras_embed(batch).numpy(),
                                       atol=1e-4)
            per_call = _time(keras_embed, batch, 1)
            repeats = max(1, int(args.seconds_per_round / max(per_call, 1e-4)))
            t_keras, t_saved = [], []
            for _ in range(args.rounds):
                t_keras.append(_time(keras_embed, batch, repeats))
                t_saved.append(_time(saved_embed, batch, repeats))
            k, s = float(np.median(t_keras)), float(np.median(t_saved))
            rows[bs] = {"keras_embeddings_per_s": bs / k, "savedmodel_embeddings_per_s": bs / s,
                        "ratio_savedmodel_over_keras": k / s, "repeats": repeats,
                        "rounds": args.rounds}

    print(f"{'batch':>5} {'Keras emb/s':>12} {'SavedModel emb/s':>17} {'ratio':>6}")
    for bs, row in rows.items():
        print(f"{bs:>5} {row['keras_embeddings_per_s']:>12.1f} "
              f"{row['savedmodel_embeddings_per_s']:>17.1f} "
              f"{row['ratio_savedmodel_over_keras']:>6.3f}")
    settings = dict(vars(args), model=args.model or "fresh IR-18 w16 64x64 lcd")
    write_json(RESULTS, {**run_metadata(settings), "rows": rows})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
