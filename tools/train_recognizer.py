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
from absl import flags, logging as absl_logging  # noqa: E402

from occface import cli  # noqa: E402
from occface.train.config import RecognizerConfig  # noqa: E402

FLAGS = flags.FLAGS

# One flag per RecognizerConfig field (same name, default, choices and help: the field's
# metadata); occface.train.config imports no TensorFlow.
cli.define_config_flags(RecognizerConfig)
# Tool-only flags.
flags.DEFINE_float("epochs", None, "Train for this many passes over the training images; "
                   "overrides --steps with ceil(epochs * images / batch_size), which is what "
                   "config.json stores.")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices (lets "
                     "--strategy=mirrored run replicas on a CPU-only machine); 0 = leave as is.",
                     lower_bound=0)
flags.DEFINE_bool("progress", True, "Draw a progress bar on stderr.")
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
    del argv
    cfg = _config_dict()
    if FLAGS.num_cpu_devices:
        import tensorflow as tf
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * FLAGS.num_cpu_devices)
    absl_logging.set_verbosity(absl_logging.WARNING)
    progress = _Progress(FLAGS.progress)
    _route_library_logs(progress)

    from occface.train import ConfigMismatchError, NonFiniteLossError, train_recognizer
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
    if result.get("already_trained"):
        print(f"already trained to step {result['step']}; model: {result['model_path']}")
        return
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
    resumed = result.get("resumed_at_step")
    where = f" (resumed at step {resumed})" if resumed is not None else ""
    print(f"trained to step {result['step']}{where}: {summary}; model: {result['model_path']}")


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
