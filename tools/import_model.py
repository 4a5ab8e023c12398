"""Import a pretrained insightface ONNX recognizer (MobileFaceNet, IR-ResNet) into occface.

    python tools/import_model.py --onnx ../shared/data/models/arcface_mbf_w600k/w600k_mbf.onnx \
        --output runs/mbf/model.keras [--export_dir exports/mbf --calibration_folds 8,9,10]

Writes a Keras model with occface's input convention (RGB faces (N, 112, 112, 3) in [0, 255],
normalisation inside); ``--variant cd`` / ``lcd`` … attaches a variant's layers around the
pretrained weights for fine-tuning. ``--export_dir`` also writes an ``embed``/``verify``
SavedModel with the threshold calibrated on LFW pairs exactly as ``tools/export.py`` does.
Pretrained weights keep their licence: insightface's models are for non-commercial research only,
and so is anything imported or fine-tuned from them.
"""

import hashlib
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import flags  # noqa: E402

from occface import choices, cli  # noqa: E402
from occface.utils import json_text  # noqa: E402

PROG = "import_model"
flags.DEFINE_string("onnx", None, "insightface ONNX recognizer (MobileFaceNet or IR-ResNet).")
flags.DEFINE_string("output", None, "Where to write the Keras model (.keras).")
flags.DEFINE_string("export_dir", None, "Also export an embed/verify SavedModel here.")
flags.DEFINE_enum("variant", "baseline", list(choices.VARIANTS),
                  "Variant layers to attach.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output file / export version.")
flags.DEFINE_float("threshold", None, "Decision threshold (cosine, in [-1, 1]) for the export; "
                   "default: calibrated on LFW pairs.", lower_bound=-1.0, upper_bound=1.0)
flags.DEFINE_string("aligned_dir", None, "Pre-aligned LFW tree for calibration (skips detection).")
flags.DEFINE_list("calibration_folds", None, "LFW folds (1-10) to calibrate on; default all.")
flags.DEFINE_string("licence", "insightface pretrained weights: non-commercial research use only",
                    "Licence of the weights, recorded in the export metadata.")
FLAGS = flags.FLAGS


def _fail(message):
    cli.fail(PROG, message, code=cli.USAGE_ERROR)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    del argv
    if not FLAGS.onnx:
        _fail("--onnx is required")
    if not FLAGS.output and not FLAGS.export_dir:
        _fail("give --output (a .keras file) and/or --export_dir")
    if FLAGS.output and not FLAGS.output.endswith(".keras"):
        _fail(f"--output must end in .keras, got {FLAGS.output}")
    output = pathlib.Path(FLAGS.output) if FLAGS.output else None
    if output is not None and output.exists() and not FLAGS.overwrite:
        _fail(f"{output} exists (pass --overwrite to replace it)")
    if output is not None and output.is_dir():
        _fail(f"--output {output} is a directory")
    if not os.path.isfile(FLAGS.onnx):
        _fail(f"ONNX file not found: {FLAGS.onnx}")
    cli.checked_calibration_folds(PROG, FLAGS.calibration_folds)


def main(argv):
    del argv
    output = pathlib.Path(FLAGS.output) if FLAGS.output else None
    from occface.models import import_onnx
    try:
        if FLAGS.export_dir:  # refuse an existing version before the import and calibration
            from occface.serving.layout import resolve_version
            resolve_version(FLAGS.export_dir, 1, FLAGS.overwrite)
        model = import_onnx(FLAGS.onnx, variant=FLAGS.variant)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    report = {"onnx": FLAGS.onnx, "onnx_sha256": _sha256(FLAGS.onnx),
              "architecture": model.build_args, "licence": FLAGS.licence}
    with tempfile.TemporaryDirectory() as tmp:
        path = output if output is not None else pathlib.Path(tmp) / "model.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.keras")
        model.save(partial)
        partial.replace(path)
        if output is not None:
            report["output"] = str(output)
        if FLAGS.export_dir:
            from occface.serving.publish import run_export
            from occface.utils import ProgressBar
            try:
                report["export"] = run_export(
                    model=str(path), kind="embed", export_dir=FLAGS.export_dir,
                    overwrite=FLAGS.overwrite, threshold=FLAGS.threshold,
                    aligned_dir=FLAGS.aligned_dir,
                    calibration_folds=cli.calibration_folds(FLAGS.calibration_folds),
                    extra_metadata={"source_onnx": FLAGS.onnx,
                                    "source_onnx_sha256": report["onnx_sha256"],
                                    "licence": FLAGS.licence},
                    log=lambda msg: print(msg, file=sys.stderr),
                    progress_factory=lambda total, desc: ProgressBar(total, desc, unit="face"))
            except (FileNotFoundError, ValueError, RuntimeError) as err:
                _fail(str(err))
    print(json_text(report))
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
