"""Does occface's RMFRD protocol reproduce the reference numbers of insightface's MobileFaceNet?

The model is ``<data_root>/models/arcface_mbf_w600k/w600k_mbf.onnx`` (insightface ``w600k_mbf``),
run with onnxruntime (benchmarks and tests only; the library never imports it) and wrapped as an
``occface.evaluation.EmbeddingModel``. Each face-detection fallback of the protocol is measured
(they differ only on the crops where YuNet finds no face), plus flip-test with the default one.

Reference (``models/arcface_mbf_w600k/README.md``, no flip): balanced accuracy 72.2 +- 2.3 %
(another measurement 71.9 %), TAR@FAR=1e-2 22.6 % (22.1 %), TAR@FAR=1e-3 7.1 %, rank-1 48.1 %
(48.3 %).

    python benchmarks/rmfrd_reference.py [--fallbacks resize,center] [--no-flip]

Prints a table and writes benchmarks/results/rmfrd_mbf_onnxruntime.json. About 1 minute per row
on 2 CPU cores (1,720 crops detected and embedded).
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from occface.evaluation import EmbeddingModel  # noqa: E402
from occface.evaluation.rmfrd import evaluate_rmfrd  # noqa: E402
from occface.evaluation.rmfrd_data import FALLBACKS  # noqa: E402
from occface.evaluation.rmfrd_protocol import RMFRD_FARS  # noqa: E402
from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "rmfrd_mbf_onnxruntime.json"
REFERENCE = {"accuracy": 0.722, "std": 0.023, "tar_at_far": {"0.01": 0.226, "0.001": 0.071},
             "rank1": 0.481,
             "other_measurement": {"accuracy": 0.719, "tar_at_far": {"0.01": 0.221},
                                   "rank1": 0.483},
             "source": "models/arcface_mbf_w600k/README.md (insightface w600k_mbf, onnxruntime, "
                       "YuNet landmarks, no flip)",
             "tolerance": 0.01}


def onnx_embedding_model(path, threads=None):
    """An insightface ArcFace ONNX recognizer as an :class:`EmbeddingModel`.

    The model takes ``input.1`` float32 NCHW ``(N, 3, 112, 112)`` RGB normalised as
    ``(x - 127.5) / 127.5``; the wrapper takes occface faces ``(N, 112, 112, 3)`` RGB in [0, 255]
    and returns the ``(N, 512)`` embeddings.
    """
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the model declares batch 1; other batch sizes warn per call
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def fn(x):
        x = (np.asarray(x, np.float32) - 127.5) / 127.5
        return sess.run(None, {name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]

    return EmbeddingModel(fn, (112, 112), "float32", source=str(path), kind="onnxruntime",
                          embedding_size=512)


def _row(res):
    keep = ("accuracy", "std", "fold_accuracies", "thresholds", "fold_sizes", "tar_at_far",
            "operating_points", "far_resolution", "rank1", "n_rank1_correct",
            "mean_genuine_score", "mean_impostor_score", "auc", "n_probes", "n_gallery",
            "n_genuine", "n_impostor", "n_balanced_pairs", "n_folds", "fallback", "n_fallback",
            "n_fallback_probes", "n_fallback_gallery", "flip", "seed", "faces", "seconds")
    return {k: res[k] for k in keep if k in res}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = data_root()
    parser.add_argument("--model", default=str(root / "models" / "arcface_mbf_w600k" /
                                               "w600k_mbf.onnx"))
    parser.add_argument("--data_dir", default=str(root / "rmfrd_subset"))
    parser.add_argument("--fallbacks", default=",".join(FALLBACKS))
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure flip-test with the first fallback")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--cache_dir", default=None, help="keep the aligned faces here")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    fallbacks = [f.strip() for f in args.fallbacks.split(",") if f.strip()]
    bad = [f for f in fallbacks if f not in FALLBACKS]
    if bad or not fallbacks:
        parser.error(f"--fallbacks: choose from {', '.join(FALLBACKS)}")
    model = onnx_embedding_model(args.model)
    runs = [(f, False) for f in fallbacks] + ([(fallbacks[0], True)] if args.flip else [])
    rows = []
    print(f"{'fallback':<10} {'flip':<5} {'bal. acc (%)':>14} {'TAR@1e-2':>9} {'TAR@1e-3':>9} "
          f"{'rank-1':>7} {'fallbacks':>9} {'s':>5}", flush=True)
    for fallback, flip in runs:
        t0 = time.monotonic()
        res = evaluate_rmfrd(model, args.data_dir, flip=flip, seed=args.seed, fars=RMFRD_FARS,
                             batch_size=args.batch_size, cache_dir=args.cache_dir,
                             fallback=fallback)
        res["seconds"] = round(time.monotonic() - t0, 1)
        row = _row(res)
        row["delta_vs_reference"] = None if flip else {
            "accuracy": row["accuracy"] - REFERENCE["accuracy"],
            "tar_at_far": {k: row["tar_at_far"][k] - v
                           for k, v in REFERENCE["tar_at_far"].items()},
            "rank1": row["rank1"] - REFERENCE["rank1"]}
        rows.append(row)
        tar = row["tar_at_far"]
        print(f"{fallback:<10} {str(flip):<5} "
              f"{100 * row['accuracy']:7.2f} ± {100 * row['std']:4.2f} {100 * tar['0.01']:9.2f}"
              f" {100 * tar['0.001']:9.2f} {100 * row['rank1']:7.2f}"
              f" {row['n_fallback_probes']:4d}+{row['n_fallback_gallery']:<4d} "
              f"{row['seconds']:5.0f}", flush=True)
    print(f"reference  False {72.2:7.2f} ± {2.3:4.2f} {22.6:9.2f} {7.1:9.2f} {48.1:7.2f}")
    settings = {**vars(args), "fallbacks": fallbacks, "fars": list(RMFRD_FARS),
                "protocol": "rmfrd", "detector": "YuNet 2023mar, score 0.6, pad 0 (occface "
                "FaceDetector(pad=0)), ArcFace 112 template",
                "runtime": "onnxruntime " + __import__("onnxruntime").__version__}
    write_json(args.output, {**run_metadata(settings), "reference": REFERENCE, "rows": rows})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
