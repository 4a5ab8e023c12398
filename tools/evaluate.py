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

    # RMFRD real masks: masked probes vs unmasked gallery (default: the shared rmfrd_subset);
    # balanced accuracy, TAR@FAR 1e-2/1e-3, rank-1. Only --occlusion none applies.
    python tools/evaluate.py --model model.keras --protocol rmfrd --output results/rmfrd.json
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import flags  # noqa: E402

from occface import choices, cli  # noqa: E402

FLAGS = flags.FLAGS
PROG = "evaluate"
flags.DEFINE_string("model", None, "A .keras file, a training model_dir, or a SavedModel dir; "
                    "'dlib' = dlib's ResNet as a peer (pip install dlib-bin "
                    "face_recognition_models).")
flags.DEFINE_enum("checkpoint", "auto", ["auto", "best", "last"],
                  "For a model_dir: best/ checkpoint, last model.keras, or best when present.")
flags.DEFINE_enum("protocol", "lfw", ["lfw", "bin", "ijbc", "megaface", "pairs", "rmfrd"],
                  "Protocol.")
flags.DEFINE_string("data_dir", None,
                    "lfw: LFW root (default: shared data); bin: .bin file; ijbc: IJB release "
                    "root; megaface: dir with probes/ and distractors/; pairs: pair list file; "
                    "rmfrd: dir with labels.csv (default: shared rmfrd_subset).")
flags.DEFINE_string("aligned_dir", None,
                    "lfw: read pre-aligned faces from this tree (LFW layout) instead of "
                    "detecting and aligning the raw images.")
flags.DEFINE_string("pairs_file", "pairs.txt", "lfw: pairs file inside --data_dir.")
flags.DEFINE_enum("align", "detect", ["detect", "aligned"],
                  "pairs/megaface/rmfrd: detect + align the image files, or use them as aligned "
                  "faces.")
flags.DEFINE_string("occlusion", "none",
                    f"Comma-separated conditions: {', '.join(choices.OCCLUSION_CONDITIONS)} (or "
                    f"'all').")
flags.DEFINE_enum("occlude", "both", ["both", "one"],
                  "Occlude both images of each pair, or only the second (probe) image.")
flags.DEFINE_integer("seed", 0,
                     "Occlusion seed (each image's occlusion depends on it and its name); "
                     "rmfrd: seed of the balanced set's impostor draw.")
flags.DEFINE_bool("flip", False, "Flip-test: embedding of image + embedding of mirrored image.")
flags.DEFINE_integer("batch_size", 64, "Images per forward pass.", lower_bound=1)
flags.DEFINE_integer("align_size", 112, "Side of aligned faces (the model resizes if it differs).")
flags.DEFINE_string("fars", None, "Comma-separated FAR targets (default 1e-3,1e-2,1e-1; IJB-C "
                    "1e-6..1e-1; RMFRD 1e-2,1e-3).")
flags.DEFINE_string("cache_dir", None, "Keep detected+aligned faces here (no re-detection).")
flags.DEFINE_integer("max_pairs", None, "Quick runs: a stratified subset of this many pairs.")
flags.DEFINE_enum("ijbc_target", "ijbc", ["ijbc", "ijbb"], "IJB file-name prefix.")
flags.DEFINE_bool("faceness", False, "IJB-C: weight image features by faceness score.")
flags.DEFINE_string("occluded_list", None, "IJB-C: file listing the occluded images; adds the "
                    "occluded-subset rows.")
flags.DEFINE_enum("occluded_mode", "images", ["images", "templates"],
                  "IJB-C occluded subset: pool only occluded images, or keep pairs touching an "
                  "occluded template.")
flags.DEFINE_enum("rmfrd_fallback", "resize", ["resize", "center"],
                  "rmfrd: face of a crop where YuNet finds none: resize the whole (tight) crop "
                  "to the face size, or resize its central 60%.")
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


def _check(argv):
    """Flag and path mistakes found without TensorFlow (the protocol's own checks follow in
    ``main``, still before the model loads)."""
    del argv
    try:
        _parse_fars(FLAGS.fars)
    except ValueError as err:
        cli.fail(PROG, str(err))
    for flag in ("data_dir", "aligned_dir", "occluded_list"):
        if FLAGS[flag].value and not os.path.exists(FLAGS[flag].value):
            cli.fail(PROG, f"data not found: --{flag} {FLAGS[flag].value}")
    from occface.choices import is_dlib_spec
    if not is_dlib_spec(FLAGS.model) and not os.path.exists(FLAGS.model):
        cli.fail(PROG, f"model not found: {FLAGS.model}")


def main(argv):
    del argv
    from occface.models.io import load_embedding_model
    from occface.evaluation.plots import accuracy_plot_path, plot_condition_accuracy, plot_roc
    from occface.evaluation.report_table import format_table
    from occface.evaluation.run_options import (DEFAULT_DATA_DIRS, check_protocol_options,
                                                parse_occlusions)
    from occface.evaluation.runner import run_evaluation
    from occface.utils import ProgressBar, run_metadata, write_json

    settings = {name: FLAGS[name].value for name in (
        "model", "checkpoint", "protocol", "data_dir", "aligned_dir", "pairs_file", "align",
        "occlusion", "occlude", "seed", "flip", "batch_size", "align_size", "fars", "cache_dir",
        "max_pairs", "ijbc_target", "faceness", "occluded_list", "occluded_mode",
        "rmfrd_fallback")}
    try:
        occlusions = parse_occlusions(FLAGS.occlusion)
        fars = _parse_fars(FLAGS.fars)
        # Cheap checks before the model loads.
        check_protocol_options(FLAGS.protocol, occlusions, FLAGS.max_pairs)
        if FLAGS.protocol not in DEFAULT_DATA_DIRS and not FLAGS.data_dir:
            raise ValueError(f"--data_dir is required for protocol {FLAGS.protocol!r}")
        model = load_embedding_model(FLAGS.model, checkpoint=FLAGS.checkpoint)
        factory = (lambda total, desc: ProgressBar(total=total, desc=desc, unit="img")) \
            if FLAGS.progress else None
        report = run_evaluation(
            model, FLAGS.protocol, FLAGS.data_dir, occlusions, FLAGS.occlude, FLAGS.seed,
            FLAGS.flip, FLAGS.batch_size, FLAGS.align, FLAGS.aligned_dir, FLAGS.pairs_file,
            FLAGS.align_size, FLAGS.cache_dir, fars, FLAGS.ijbc_target, FLAGS.faceness,
            FLAGS.occluded_list, FLAGS.occluded_mode, FLAGS.max_pairs, factory,
            rmfrd_fallback=FLAGS.rmfrd_fallback)
    except (ValueError, FileNotFoundError, OSError) as e:
        cli.fail(PROG, str(e))
    print(format_table(report))
    if FLAGS.plot:
        try:
            print(f"ROC plot: {plot_roc(report, FLAGS.plot)}")
        except ImportError:
            print("matplotlib is not installed: skipping --plot (pip install matplotlib)",
                  file=sys.stderr)
        except ValueError as e:
            print(f"evaluate: skipping --plot: {e}", file=sys.stderr)
        try:  # per-condition accuracy bars beside the ROC plot (roc.png -> roc_accuracy.png)
            bars = plot_condition_accuracy(report, accuracy_plot_path(FLAGS.plot))
            print(f"accuracy plot: {bars['path']}")
        except ImportError:
            pass  # said above
        except ValueError as e:
            print(f"evaluate: skipping the accuracy plot: {e}", file=sys.stderr)
    if FLAGS.output:
        try:
            write_json(FLAGS.output, {**run_metadata(settings), "report": report})
        except OSError as e:
            cli.fail(PROG, f"cannot write {FLAGS.output}: {e}")
        print(f"results: {FLAGS.output}")
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
