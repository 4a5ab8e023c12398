"""Export a trained occface model as a TF Serving SavedModel.

    python tools/export.py --model runs/lcd/model_dir --kind embed --export_dir exports/lcd
    python tools/export.py --model runs/idgan/generator.keras --kind inpaint --export_dir exports/g
    python tools/export.py --model runs/lcd --generator runs/idgan/generator.keras \
        --kind cascade --cascade_evidence benchmarks/results/idgan_cpu.json --export_dir exports/c

Writes ``export_dir/<version>/`` atomically (``--overwrite`` to replace a version), calibrates the
verification threshold on LFW pairs unless ``--threshold`` is given, then reloads the export in a
fresh process without occface and compares every signature with the Keras model on real faces.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import flags  # noqa: E402

from occface import cli  # noqa: E402
from occface.utils import json_text  # noqa: E402

PROG = "export"

flags.DEFINE_string("model", None, "Recognizer (.keras or training model_dir) for embed/cascade; "
                    "the generator .keras for --kind inpaint.")
flags.DEFINE_enum("kind", "embed", ["embed", "inpaint", "cascade"], "Which signatures to export.")
flags.DEFINE_string("export_dir", None, "Base path; the model goes to export_dir/<version>/.")
flags.DEFINE_integer("version", 1, "Version sub-directory to write.", lower_bound=1)
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.DEFINE_string("generator", None, "ID-GAN generator .keras (cascade only).")
flags.DEFINE_float("threshold", None, "Decision threshold (cosine, in [-1, 1]); default: "
                   "calibrated on LFW.", lower_bound=-1.0, upper_bound=1.0)
flags.DEFINE_string("data_dir", None, "LFW root for calibration (default $OCCFACE_DATA/lfw).")
flags.DEFINE_string("aligned_dir", None, "Pre-aligned LFW tree (from tools/prepare_dataset.py) "
                    "to skip detection during calibration.")
flags.DEFINE_integer("calibration_pairs", 6000, "How many LFW pairs to calibrate on.")
flags.DEFINE_list("calibration_folds", None, "LFW folds (1-10) to calibrate on; default all. Use "
                  "the folds the model did not train on, e.g. 8,9,10.")
flags.DEFINE_bool("flip_test", True, "Flip-test inside the embed graph.")
flags.DEFINE_string("cascade_evidence", None, "JSON with measured occluded-pair accuracies "
                    "('direct' vs 'inpainted' per occlusion kind) deciding the cascade policy.")
flags.DEFINE_string("check_images", None, "Folder of face photos for the self-check (default: "
                    "saved_models/samples).")
flags.DEFINE_string("licence", None, "Licence of the weights, stored in the export metadata (e.g. "
                    "for weights derived from insightface's: non-commercial research only).")
FLAGS = flags.FLAGS


def _fail(message):
    cli.fail(PROG, message, code=cli.USAGE_ERROR)


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    del argv
    if not FLAGS.model or not FLAGS.export_dir:
        _fail("--model and --export_dir are required")
    for flag in ("model", "generator", "cascade_evidence", "check_images"):
        if FLAGS[flag].value and not os.path.exists(FLAGS[flag].value):
            _fail(f"--{flag} not found: {FLAGS[flag].value}")
    cli.checked_calibration_folds(PROG, FLAGS.calibration_folds)


def main(argv):
    del argv
    from occface.serving.publish import run_export
    from occface.utils import ProgressBar

    try:
        folds = cli.calibration_folds(FLAGS.calibration_folds)
        report = run_export(
            model=FLAGS.model, kind=FLAGS.kind, export_dir=FLAGS.export_dir,
            version=FLAGS.version, overwrite=FLAGS.overwrite, generator=FLAGS.generator,
            threshold=FLAGS.threshold, data_dir=FLAGS.data_dir, aligned_dir=FLAGS.aligned_dir,
            calibration_pairs=FLAGS.calibration_pairs,
            calibration_folds=folds, flip_test=FLAGS.flip_test,
            cascade_evidence=FLAGS.cascade_evidence, check_images=FLAGS.check_images,
            extra_metadata={"licence": FLAGS.licence} if FLAGS.licence else None,
            log=lambda msg: print(msg, file=sys.stderr),
            progress_factory=lambda total, desc: ProgressBar(total, desc, unit="face"))
    except (OSError, ValueError, RuntimeError) as err:  # OSError: e.g. no permission to write
        _fail(str(err))
    print(json_text(report))
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
