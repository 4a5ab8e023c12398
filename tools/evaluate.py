"""Evaluate a face recognizer on a standard protocol, clean and occluded.

Prints the papers' kind of table (accuracy ± std over 10 folds, TAR@FAR, AUC, feature robustness)
and writes every number with the exact settings to JSON; optionally plots the ROC curves.

Examples::

    # LFW, all 6,000 pairs, raw images detected + aligned on the fly; clean and masked probes
    python tools/evaluate.py --model runs/lcd18 --protocol lfw --occlusion none,mask \\
        --occlude one --flip --output results/lfw.json --plot results/lfw_roc.png

    # LFW from a pre-aligned tree (tools/prepare_dataset.py output)
    python tools/evaluate.py --model model.keras --aligned_dir runs/lfw112

    # insightface .bin set (LFW / CFP-FP / AgeDB-30), IJB-C with its occluded subset
    python tools/evaluate.py --model export/1 --protocol bin --data_dir agedb_30.bin
    python tools/evaluate.py --model model.keras --protocol ijbc --data_dir IJB_release/IJBC \\
        --occluded_list ijbc_occluded.txt --faceness
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from occface.cli import import_tensorflow_quietly  # noqa: E402
import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras file, a training model_dir, or a SavedModel dir.")
flags.DEFINE_enum("checkpoint", "auto", ["auto", "best", "last"],
                  "For a model_dir: best/ checkpoint, last model.keras, or best when present.")
flags.DEFINE_enum("protocol", "lfw", ["lfw", "bin", "ijbc", "megaface", "pairs"], "Protocol.")
flags.DEFINE_string("data_dir", None,
                    "lfw: LFW root (default: shared data); bin: .bin file; ijbc: IJB release "
                    "root; megaface: dir with probes/ and distractors/; pairs: pair list file.")
flags.DEFINE_string("aligned_dir", None,
                    "lfw: read pre-aligned faces from this tree (LFW layout) instead of "
                    "detecting and aligning the raw images.")
flags.DEFINE_string("pairs_file", "pairs.txt", "lfw: pairs file inside --data_dir.")
flags.DEFINE_enum("align", "detect", ["detect", "aligned"],
                  "pairs/megaface: detect + align the image files, or use them as aligned faces.")
flags.DEFINE_string("occlusion", "none",
                    "Comma-separated conditions: none, block, mask, sunglasses, upper, lower, "
                    "left, right (or 'all').")
flags.DEFINE_enum("occlude", "both", ["both", "one"],
                  "Occlude both images of each pair, or only the second (probe) image.")
flags.DEFINE_integer("seed", 0,
                     "Occlusion seed (each image's occlusion depends on it and its name).")
flags.DEFINE_bool("flip", False, "Flip-test: embedding of image + embedding of mirrored image.")
flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
flags.DEFINE_integer("align_size", 112, "Side of aligned faces (the model resizes if it differs).")
flags.DEFINE_string("fars", None, "Comma-separated FAR targets (default 1e-3,1e-2,1e-1; IJB-C "
                    "1e-6..1e-1).")
flags.DEFINE_string("cache_dir", None, "Keep detected+aligned faces here (no re-detection).")
flags.DEFINE_integer("max_pairs", None, "Quick runs: a stratified subset of this many pairs.")
flags.DEFINE_enum("ijbc_target", "ijbc", ["ijbc", "ijbb"], "IJB file-name prefix.")
flags.DEFINE_bool("faceness", False, "IJB-C: weight image features by faceness score.")
flags.DEFINE_string("occluded_list", None, "IJB-C: file listing the occluded images; adds the "
                    "occluded-subset rows.")
flags.DEFINE_enum("occluded_mode", "images", ["images", "templates"],
                  "IJB-C occluded subset: pool only occluded images, or keep pairs touching an "
                  "occluded template.")
flags.DEFINE_string("output", None, "Write the JSON report here.")
flags.DEFINE_string("plot", None, "Write the ROC plot here (needs matplotlib).")
flags.DEFINE_bool("progress", True, "Show progress bars on stderr.")
flags.mark_flag_as_required("model")


def _parse_fars(text):
    if not text:
        return None
    try:
        fars = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--fars must be comma-separated numbers, got {text!r}") from None
    if not fars or any(not 0 <= f <= 1 for f in fars):
        raise ValueError(f"--fars values must lie in [0, 1], got {text!r}")
    return fars


def main(argv):
    if len(argv) > 1:
        print(f"evaluate: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from occface.evaluation import load_embedding_model
    from occface.evaluation.runner import format_table, parse_occlusions, plot_roc, run_evaluation
    from occface.utils import ProgressBar, run_metadata, write_json

    settings = {name: FLAGS[name].value for name in (
        "model", "checkpoint", "protocol", "data_dir", "aligned_dir", "pairs_file", "align",
        "occlusion", "occlude", "seed", "flip", "batch_size", "align_size", "fars", "cache_dir",
        "max_pairs", "ijbc_target", "faceness", "occluded_list", "occluded_mode")}
    try:
        occlusions = parse_occlusions(FLAGS.occlusion)
        fars = _parse_fars(FLAGS.fars)
        if FLAGS.batch_size < 1:
            raise ValueError("--batch_size must be positive")
        if FLAGS.protocol != "lfw" and not FLAGS.data_dir:  # cheap checks before TF loads
            raise ValueError(f"--data_dir is required for protocol {FLAGS.protocol!r}")
        for flag in ("data_dir", "aligned_dir", "occluded_list"):
            if FLAGS[flag].value and not os.path.exists(FLAGS[flag].value):
                raise FileNotFoundError(f"data not found: --{flag} {FLAGS[flag].value}")
        model = load_embedding_model(FLAGS.model, checkpoint=FLAGS.checkpoint)
        factory = (lambda total, desc: ProgressBar(total=total, desc=desc, unit="img")) \
            if FLAGS.progress else None
        report = run_evaluation(
            model, FLAGS.protocol, FLAGS.data_dir, occlusions, FLAGS.occlude, FLAGS.seed,
            FLAGS.flip, FLAGS.batch_size, FLAGS.align, FLAGS.aligned_dir, FLAGS.pairs_file,
            FLAGS.align_size, FLAGS.cache_dir, fars, FLAGS.ijbc_target, FLAGS.faceness,
            FLAGS.occluded_list, FLAGS.occluded_mode, FLAGS.max_pairs, factory)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 1
    print(format_table(report))
    if FLAGS.plot:
        try:
            print(f"ROC plot: {plot_roc(report, FLAGS.plot)}")
        except ImportError:
            print("matplotlib is not installed: skipping --plot (pip install matplotlib)",
                  file=sys.stderr)
        except ValueError as e:
            print(f"evaluate: skipping --plot: {e}", file=sys.stderr)
    if FLAGS.output:
        try:
            write_json(FLAGS.output, {**run_metadata(settings), "report": report})
        except OSError as e:
            print(f"evaluate: error: cannot write {FLAGS.output}: {e}", file=sys.stderr)
            return 1
        print(f"results: {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
