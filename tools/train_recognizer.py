"""Train a face recognizer (LCD or a baseline) with ArcFace in a custom loop under tf.distribute.

The logic lives in :func:`occface.train.train_recognizer`; this tool maps flags to a
:class:`occface.train.RecognizerConfig`, draws a progress bar and turns user mistakes into one-line
errors. Re-running the same command resumes from the newest checkpoint in ``--model_dir`` (a
finished run prints ``already trained to step N``); a ``--model_dir`` holding a different
configuration is refused, except for ``--steps``: a larger value trains the run on from its last
step to the new total, with the learning-rate schedule of a run of that total.

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
from absl import flags  # noqa: E402

from occface import cli, cli_training  # noqa: E402
from occface.train.config import RecognizerConfig  # noqa: E402

FLAGS = flags.FLAGS

# One flag per RecognizerConfig field (same name, default, choices and help: the field's
# metadata); occface.train.config imports no TensorFlow.
cli.define_config_flags(RecognizerConfig)
# Tool-only flags.
flags.DEFINE_float("epochs", None, "Train for this many passes over the training images; "
                   "overrides --steps with ceil(epochs * images / batch_size), which is what "
                   "config.json stores.")
cli_training.define_training_console_flags()  # --num_cpu_devices, --progress
flags.DEFINE_bool("print_config", False, "Print the resolved training config as JSON and exit "
                  "(checks a flagfile without training).")

PROG = "train_recognizer"


def _fail(message, code=1):
    cli.fail(PROG, message, code)


def _config_dict():
    return cli.config_from_flags(RecognizerConfig)


def _check(argv):
    """Checks that need no TensorFlow, so plain mistakes fail fast; ``--print_config`` prints
    the resolved config and exits 0 here."""
    del argv
    cfg = _config_dict()
    if FLAGS.print_config:
        from occface.utils import json_text
        print(json_text(cfg))
        sys.exit(0)
    cli_training.check_training_inputs(PROG, cfg, files=("lfw_pairs", "val_pairs"),
                                       dirs=("val_data_dir",))
    if cfg["xla"] and cfg["strategy"] != "default":
        _fail("--xla works on a single device only (XLA inside MirroredStrategy / "
              "MultiWorkerMirroredStrategy replicas fails); drop --xla or use --strategy=default")
    if cfg["strategy"] == "multi_worker" and not os.environ.get("TF_CONFIG"):
        _fail("--strategy=multi_worker needs the TF_CONFIG environment variable")


#: The scalars the progress bar and the final line show.
SCALARS = ("loss", "arcface", "accuracy")


def main(argv):
    import logging
    del argv
    cfg = _config_dict()
    progress = cli_training.training_console(SCALARS, ".3f")

    def train():
        from occface.train import train_recognizer
        config = RecognizerConfig.from_dict(cfg)
        if FLAGS.epochs is not None:
            from occface.train.recognizer import steps_for_epochs
            config.steps = steps_for_epochs(config, FLAGS.epochs)
            logging.getLogger("occface.tools").info("--epochs=%g: %d steps", FLAGS.epochs,
                                                    config.steps)
        return train_recognizer(config, progress=progress)

    result = cli_training.run_training(PROG, train, progress)
    if result.get("already_trained"):
        print(f"already trained to step {result['step']}; model: {result['model_path']}")
        return
    final = result.get("final", {})
    summary = ", ".join(f"{k}={final[k]:.4f}" for k in SCALARS if k in final)
    best = result.get("best")
    if best:
        accs = ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k.endswith("_acc"))
        summary += f", best validation {accs} (step {best['step']})"
    ips = result.get("images_per_sec")
    if ips:
        summary += f", {ips:.1f} images/s"
    resumed = result.get("resumed_at_step")
    where = f" (resumed at step {resumed})" if resumed is not None else ""
    print(f"trained to step {result['step']}{where}: {summary}; model: {result['model_path']}")


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
