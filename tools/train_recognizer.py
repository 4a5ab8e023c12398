"""Train a face recognizer (LCD or a baseline) with ArcFace in a custom loop under tf.distribute.

The logic lives in :func:`occface.train.train_recognizer`; this tool maps flags to a
:class:`occface.train.RecognizerConfig`, draws a progress bar and turns user mistakes into one-line
errors. Re-running the same command resumes from the newest checkpoint in ``--model_dir``; a
``--model_dir`` holding a different configuration is refused.

Examples::

    # CPU run on aligned LFW (tools/prepare_dataset.py output), identity-disjoint validation
    python tools/train_recognizer.py --flagfile=configs/cpu_lfw_r18w16_64.cfg \\
        --model_dir=runs/lcd_r18w16

    # The paper's setup: IR-50 on MS1M (.rec), 4 GPUs
    python tools/train_recognizer.py --flagfile=configs/paper_r50_ms1m_4gpu.cfg \\
        --data_dir=/data/faces_emore/train.rec --model_dir=runs/lcd_r50

    # Two machines: set TF_CONFIG on each, then the same command with --strategy=multi_worker
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from occface.cli import import_tensorflow_quietly  # noqa: E402
import_tensorflow_quietly()

from absl import app, flags, logging as absl_logging  # noqa: E402

FLAGS = flags.FLAGS

# Data
flags.DEFINE_string("data_dir", None, "Training data: identity-per-folder tree of aligned faces "
                    "or an MS1M-style .rec file (whatever occface.data.training_dataset reads).")
flags.DEFINE_integer("input_size", 112, "Side of the square network input (faces are resized).",
                     lower_bound=16)
flags.DEFINE_bool("augment", True, "Training augmentation (flip etc., see occface.data).")
flags.DEFINE_string("train_occlusion", "", "Synthetic occlusion applied to training images "
                    "(a kind understood by occface.data.training_dataset); empty = none.")
flags.DEFINE_string("lfw_pairs", "", "pairs.txt defining LFW folds; with --train_folds, train "
                    "only on identities of those folds (identity-disjoint from --val_folds).")
flags.DEFINE_string("train_folds", "", "0-based LFW folds whose identities are trained on, e.g. "
                    "0-6.")
flags.DEFINE_integer("min_images_per_identity", 1, "With --train_folds: keep identities with at "
                     "least this many images.", lower_bound=1)
# Model
flags.DEFINE_enum("variant", "lcd",
                  ["baseline", "cd", "cd_sr", "lcd", "cutout", "dropblock", "wcd"],
                  "Recognizer variant (lcd = channel dropout + spatial regularization + SAM).")
flags.DEFINE_enum("depth", "50", ["18", "34", "50", "100"], "IR-ResNet depth.")
flags.DEFINE_integer("width", 64, "Base width (64 = standard network).", lower_bound=1)
flags.DEFINE_integer("embedding_size", 512, "Embedding size.", lower_bound=1)
flags.DEFINE_float("dropout", 0.0, "Dropout before the embedding layer.")
flags.DEFINE_integer("lcd_stage", 3, "Stage whose features channel dropout / SR act on (2-4).")
flags.DEFINE_integer("sam_stage", 4, "Stage reweighted by SAM (lcd).")
flags.DEFINE_float("lcd_min_rate", 0.0, "Per-sample channel drop ratio lower bound.")
flags.DEFINE_float("lcd_max_rate", 0.6, "Per-sample channel drop ratio upper bound.")
flags.DEFINE_float("sr_filter_weight", 100.0, "Weight of the filter-orthogonality term (Eq. 1).")
flags.DEFINE_float("sr_response_weight", 1.0, "Weight of the response-decorrelation term (Eq. 2).")
flags.DEFINE_enum("sr_reduction", "mean", ["mean", "sum"], "Normalisation of the SR terms.")
flags.DEFINE_float("arcface_margin", 0.5, "ArcFace additive angular margin m.")
flags.DEFINE_float("arcface_scale", 64.0, "ArcFace scale s.")
# Optimisation
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adamw"], "Optimizer.")
flags.DEFINE_float("learning_rate", 0.1, "Base learning rate.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_float("weight_decay", 5e-4, "Weight decay (SGD: coupled L2 as in PyTorch/MXNet; "
                   "AdamW: decoupled).")
flags.DEFINE_enum("lr_schedule", "piecewise", ["piecewise", "cosine", "constant"],
                  "Learning-rate schedule after the warm-up.")
flags.DEFINE_list("lr_boundaries", [], "Piecewise: steps at which the rate is multiplied by "
                  "--lr_decay_rate.")
flags.DEFINE_float("lr_decay_rate", 0.1, "Piecewise decay factor.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.", lower_bound=0)
flags.DEFINE_float("warmup_start", 0.0, "Warm-up starting rate as a fraction of the base rate.")
flags.DEFINE_float("min_lr", 0.0, "Cosine: final learning rate.")
flags.DEFINE_integer("batch_size", 128, "Global batch size (over all replicas and workers).",
                     lower_bound=1)
flags.DEFINE_integer("steps", 1000, "Training steps (batches).", lower_bound=1)
flags.DEFINE_float("epochs", None, "Train for this many passes over the training images; "
                   "overrides --steps with ceil(epochs * images / batch_size), which is what "
                   "config.json stores.")
# System
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy (multi_worker reads TF_CONFIG).")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices (lets "
                     "--strategy=mirrored run replicas on a CPU-only machine); 0 = leave as is.",
                     lower_bound=0)
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 compute with dynamic loss scaling "
                  "(GPUs; very slow on CPU).")
flags.DEFINE_bool("xla", False, "XLA-compile the training step (single device only).")
flags.DEFINE_bool("sync_batchnorm", True, "Synchronise BatchNorm statistics across replicas.")
flags.DEFINE_integer("seed", 0, "Random seed (initialisation, data order, dropout).")
flags.DEFINE_bool("deterministic", False, "tf.config.experimental.enable_op_determinism().")
# Bookkeeping
flags.DEFINE_string("model_dir", None, "Output directory: checkpoints, TensorBoard logs, "
                    "model.keras, config.json.")
flags.DEFINE_integer("checkpoint_interval", 1000, "Steps between checkpoints.", lower_bound=0)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", lower_bound=1)
flags.DEFINE_integer("summary_interval", 100, "Steps between TensorBoard summaries.",
                     lower_bound=0)
flags.DEFINE_integer("max_nonfinite_steps", 20, "Consecutive non-finite steps that stop the run.",
                     lower_bound=1)
flags.DEFINE_integer("validation_interval", 0, "Steps between validations (0 = only at the end).",
                     lower_bound=0)
flags.DEFINE_string("val_pairs", "", "Validation pairs file (pairs.txt); default --lfw_pairs.")
flags.DEFINE_string("val_data_dir", "", "Aligned image tree of the validation pairs; default "
                    "--data_dir.")
flags.DEFINE_string("val_folds", "", "0-based folds of the pairs file validated on, e.g. 7-9.")
flags.DEFINE_list("val_occlusions", ["none"], "Validation conditions: none (clean) and/or "
                  "occlusion kinds applied to the second image of each pair "
                  "(e.g. none,block,mask).")
flags.DEFINE_integer("val_batch_size", 64, "Images per validation forward pass.", lower_bound=1)
flags.DEFINE_bool("progress", True, "Draw a progress bar on stderr.")
flags.DEFINE_bool("print_config", False, "Print the resolved training config as JSON and exit "
                  "(checks a flagfile without training).")

CONFIG_FLAGS = (
    "data_dir", "input_size", "augment", "train_occlusion", "lfw_pairs", "train_folds",
    "min_images_per_identity", "variant", "depth", "width", "embedding_size", "dropout",
    "lcd_stage", "sam_stage", "lcd_min_rate", "lcd_max_rate", "sr_filter_weight",
    "sr_response_weight", "sr_reduction", "arcface_margin", "arcface_scale", "optimizer",
    "learning_rate", "momentum", "weight_decay", "lr_schedule", "lr_boundaries", "lr_decay_rate",
    "warmup_steps", "warmup_start", "min_lr", "batch_size", "steps", "strategy",
    "mixed_precision", "xla", "sync_batchnorm", "seed", "deterministic", "model_dir",
    "checkpoint_interval", "keep_checkpoints", "summary_interval", "max_nonfinite_steps",
    "validation_interval", "val_pairs", "val_data_dir", "val_folds", "val_occlusions",
    "val_batch_size")

PROG = "train_recognizer"


def _fail(message, code=1):
    from occface.cli import fail
    fail(PROG, message, code)


def _parse_flags(argv):
    from occface.cli import parse_flags
    return parse_flags(PROG, FLAGS, argv)


def _config_dict():
    cfg = {name: FLAGS[name].value for name in CONFIG_FLAGS}
    cfg["depth"] = int(cfg["depth"])
    for key in ("train_folds", "val_folds"):
        cfg[key] = cfg[key] or ""
    return cfg


def _cheap_checks(cfg):
    """Checks that need no TensorFlow, so plain mistakes fail fast."""
    if not cfg["model_dir"]:
        _fail("--model_dir is required")
    if not cfg["data_dir"]:
        _fail("--data_dir is required")
    if not os.path.exists(cfg["data_dir"]):
        _fail(f"training data not found: --data_dir={cfg['data_dir']}")
    for flag in ("lfw_pairs", "val_pairs"):
        if cfg[flag] and not os.path.isfile(cfg[flag]):
            _fail(f"--{flag} file not found: {cfg[flag]}")
    if cfg["val_data_dir"] and not os.path.isdir(cfg["val_data_dir"]):
        _fail(f"--val_data_dir not found: {cfg['val_data_dir']}")
    if cfg["xla"] and cfg["strategy"] != "default":
        _fail("--xla works on a single device only (XLA inside MirroredStrategy / "
              "MultiWorkerMirroredStrategy replicas fails); drop --xla or use --strategy=default")
    if cfg["strategy"] == "multi_worker" and not os.environ.get("TF_CONFIG"):
        _fail("--strategy=multi_worker needs the TF_CONFIG environment variable")


class _Progress:
    """Console progress bar for the training loop (created at the first step, so a resumed run's
    rate and ETA count only the steps it runs)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.bar = None

    def __call__(self, step, total, values):
        if not self.enabled:
            return
        from occface.utils import ProgressBar
        if self.bar is None:
            start = step - 1
            desc = "train" if start == 0 else f"train (resumed at {start})"
            self.bar = ProgressBar(total=total - start, desc=desc, unit="step")
        postfix = " ".join(f"{k}={values[k]:.3f}" for k in ("loss", "arcface", "accuracy")
                           if k in values)
        self.bar.update(1, postfix=f"step {step}/{total} {postfix}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _route_library_logs(progress):
    """Show the library's INFO logs (summaries, validation, checkpoints) on stderr, each on its
    own line above the progress bar."""
    import logging

    class Handler(logging.Handler):
        def emit(self, record):
            try:
                msg = self.format(record)
                if progress.bar is not None:
                    msg = ("\r\033[K" if sys.stderr.isatty() else "\n") + msg
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - logging must never break training
                self.handleError(record)

    handler = Handler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("occface")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv):
    import logging
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}", code=2)
    cfg = _config_dict()
    if FLAGS.print_config:
        import json
        print(json.dumps(cfg, indent=2))
        return
    _cheap_checks(cfg)
    if FLAGS.num_cpu_devices:
        import tensorflow as tf
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * FLAGS.num_cpu_devices)
    absl_logging.set_verbosity(absl_logging.WARNING)
    progress = _Progress(FLAGS.progress)
    _route_library_logs(progress)

    from occface.train import (ConfigMismatchError, NonFiniteLossError, RecognizerConfig,
                               train_recognizer)
    try:
        config = RecognizerConfig.from_dict(cfg)
        if FLAGS.epochs is not None:
            from occface.train.recognizer import steps_for_epochs
            config.steps = steps_for_epochs(config, FLAGS.epochs)
            logging.getLogger("occface.tools").info("--epochs=%g: %d steps", FLAGS.epochs,
                                                    config.steps)
        result = train_recognizer(config, progress=progress)
    except (ValueError, FileNotFoundError, ConfigMismatchError, NonFiniteLossError) as err:
        progress.close()
        _fail(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    except KeyboardInterrupt:
        progress.close()
        _fail("interrupted; run the same command again to resume from the last checkpoint",
              code=130)
    progress.close()
    final = result.get("final", {})
    summary = ", ".join(f"{k}={final[k]:.4f}" for k in ("loss", "arcface", "accuracy")
                        if k in final)
    best = result.get("best")
    if best:
        accs = ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k.endswith("_acc"))
        summary += f", best validation {accs} (step {best['step']})"
    ips = result.get("images_per_sec")
    if ips:
        summary += f", {ips:.1f} images/s"
    print(f"trained to step {result['step']}: {summary}; model: {result['model_path']}")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
