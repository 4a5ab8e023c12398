"""Make a pretrained ArcFace recognizer robust to occlusion: distillation with LCD / occluders.

    python tools/finetune_recognizer.py --aligned_dir runs/lfw112 --arm lcd_occlusion \
        --output runs/mbf_ft/model.keras --result runs/mbf_ft/result.json

The student starts from the pretrained ONNX model (default: insightface's w600k_mbf in the shared
data), learns to map occluded faces (and, with ``--arm lcd*``, stage-3 features with whole
channels dropped by LCD) onto the frozen teacher's embedding of the clean face, with stages 1-3
frozen and their features cached under ``--cache_dir`` (computed once, reused by every run).
Training faces are LFW identities of pairs.txt folds 0-5 plus everyone in no pair; fold 6 picks
the checkpoint; folds 7-9, LFW 10-fold and RMFRD are scored once at the end. See
``occface.train.finetune``. Weights derived from insightface's models are for non-commercial
research only.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import flags  # noqa: E402

from occface import cli  # noqa: E402
from occface.choices import FINETUNE_ARMS  # noqa: E402
from occface.utils import json_text  # noqa: E402
from occface.paths import data_root  # noqa: E402

PROG = "finetune_recognizer"
flags.DEFINE_string("onnx", None, "Pretrained ONNX recognizer; default: "
                    "$OCCFACE_DATA/models/arcface_mbf_w600k/w600k_mbf.onnx.")
flags.DEFINE_enum("arm", "lcd_occlusion", list(FINETUNE_ARMS),
                  "What the student is trained with.")
flags.DEFINE_integer("seed", 0, "Seed of the data order, occlusion draws and LCD.")
flags.DEFINE_integer("steps", 400, "Training steps.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Faces per step.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-4, "Peak Adam learning rate (cosine decay).",
                   lower_bound=0.0)
flags.DEFINE_float("lcd_max_rate", 0.6, "LCD's largest per-sample drop ratio.", lower_bound=0.0,
                   upper_bound=1.0)
flags.DEFINE_integer("eval_every", 100, "Validate (fold 6) every N steps; the best is kept.",
                     lower_bound=1)
flags.DEFINE_integer("max_train_images", 6000, "Random subset of the training faces.",
                     lower_bound=1)
flags.DEFINE_string("aligned_dir", None, "LFW aligned at 112 px (tools/prepare_dataset.py).")
flags.DEFINE_string("cache_dir", "runs/ft_cache", "Where the frozen-trunk features are cached.")
flags.DEFINE_string("output", None, "Write the fine-tuned model here (.keras).")
flags.DEFINE_string("result", None, "Write the run's metrics and settings here (JSON).")
FLAGS = flags.FLAGS


def _fail(message):
    cli.fail(PROG, message, code=cli.USAGE_ERROR)


def _onnx_path(root):
    return FLAGS.onnx or (str(root / "models/arcface_mbf_w600k/w600k_mbf.onnx") if root else None)


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    del argv
    if not FLAGS.aligned_dir:
        _fail("--aligned_dir is required (LFW aligned by tools/prepare_dataset.py)")
    if not os.path.isdir(FLAGS.aligned_dir):
        _fail(f"--aligned_dir not found: {FLAGS.aligned_dir}")
    if FLAGS.output and not FLAGS.output.endswith(".keras"):
        _fail(f"--output must end in .keras, got {FLAGS.output}")
    for path in (FLAGS.output, FLAGS.result):
        if path and pathlib.Path(path).exists():
            _fail(f"{path} exists; remove it or choose another path")
    root = data_root(required=False)
    onnx = _onnx_path(root)
    if onnx is None:
        _fail("--onnx not given and no shared data found (set OCCFACE_DATA)")
    if root is None:
        _fail("the LFW pairs and RMFRD are needed: set OCCFACE_DATA")
    if not os.path.isfile(onnx):
        _fail(f"ONNX file not found: {onnx}")


def main(argv):
    del argv
    root = data_root()
    onnx = _onnx_path(root)
    from occface.train.finetune import FinetuneConfig
    from occface.train.finetune_protocol import run_arm, teacher_and_data
    from occface.utils import ProgressBar, run_metadata, write_json
    try:
        config = FinetuneConfig(arm=FLAGS.arm, seed=FLAGS.seed, steps=FLAGS.steps,
                                batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
                                lcd_max_rate=FLAGS.lcd_max_rate, eval_every=FLAGS.eval_every)
        head, data, targets = teacher_and_data(
            onnx, FLAGS.aligned_dir, root / "lfw", root / "rmfrd_subset", FLAGS.cache_dir,
            max_train_images=FLAGS.max_train_images,
            progress_factory=lambda total, desc: ProgressBar(total, desc, unit="face"))
        model, result = run_arm(onnx, data, head, targets, config,
                                log_fn=lambda m: print(m, file=sys.stderr))
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    result["data"] = data.settings
    result["licence"] = "derived from insightface pretrained weights: non-commercial research only"
    names = ("onnx", "arm", "seed", "steps", "batch_size", "learning_rate", "lcd_max_rate",
             "eval_every", "max_train_images", "aligned_dir", "cache_dir", "output", "result")
    result.update(run_metadata({k: FLAGS[k].value for k in names}))
    if FLAGS.output:
        pathlib.Path(FLAGS.output).parent.mkdir(parents=True, exist_ok=True)
        partial = pathlib.Path(FLAGS.output + ".partial.keras")
        model.save(partial)
        partial.replace(FLAGS.output)
    if FLAGS.result:
        write_json(FLAGS.result, result)
    summary = {"arm": result["arm"], "lfw10": result["lfw10"]["accuracy"],
               "test": {k: v["accuracy_at_val_threshold"] for k, v in result["test"].items()
                        if isinstance(v, dict)},
               "rmfrd": {k: result["rmfrd"][k] for k in ("accuracy", "rank1")},
               "rmfrd_tar_at_far": result["rmfrd"]["tar_at_far"]}
    print(json_text(summary))
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
