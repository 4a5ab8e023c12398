"""What the training tools (``tools/train_recognizer.py``, ``tools/train_idgan.py``) share.

Before TensorFlow is imported (the tool's ``checks``): :func:`check_training_inputs`, the cheap
checks of the data and input files. In ``main``: :func:`training_console` (logical CPU devices,
a :class:`StepProgress` bar with the library's log lines above it; its flags come from
:func:`define_training_console_flags`) and :func:`run_training` (the run's errors as one line,
Ctrl-C as "run again to resume"). Like :mod:`occface.cli`, it imports nothing heavy at module
level.
"""

import os
import sys

from absl import flags

from occface.cli import fail

# The flags that define_training_console_flags defines belong to the tool that calls it (its
# --help), as those of occface.cli.define_config_flags.
flags.disclaim_key_flags()

#: Exit status of a training run stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


def check_training_inputs(prog, cfg, files=(), paths=(), dirs=()):
    """The cheap input checks of a training tool, run before TensorFlow is imported.

    ``--model_dir`` and ``--data_dir`` are required and the data must exist; each flag named in
    ``files`` that is given must name a file, in ``paths`` an existing path, in ``dirs`` a
    directory. The first mistake is reported by :func:`occface.cli.fail` (exit status 1).

    Parameters
    ----------
    prog : str
        The tool's name for error lines.
    cfg : dict
        The flags' values by name (:func:`occface.cli.config_from_flags`; ``""`` = not given).
    files, paths, dirs : sequence of str
        Flag names, checked in this order.
    """
    if not cfg["model_dir"]:
        fail(prog, "--model_dir is required")
    if not cfg["data_dir"]:
        fail(prog, "--data_dir is required")
    if not os.path.exists(cfg["data_dir"]):
        fail(prog, f"training data not found: --data_dir={cfg['data_dir']}")
    for flag in files:
        if cfg[flag] and not os.path.isfile(cfg[flag]):
            fail(prog, f"--{flag} file not found: {cfg[flag]}")
    for flag, exists in [(f, os.path.exists) for f in paths] + [(f, os.path.isdir) for f in dirs]:
        if cfg[flag] and not exists(cfg[flag]):
            fail(prog, f"--{flag} not found: {cfg[flag]}")


class StepProgress:
    """Console progress bar of a training tool, the ``progress(step, total, values)`` callback.

    The bar is created at the first step, so a resumed run's rate and ETA count only the steps
    it runs. Its postfix shows the scalars ``keys`` of ``values`` formatted with ``number_format``.

    Parameters
    ----------
    enabled : bool
        Draw the bar (``--progress``); when false every call does nothing.
    keys : sequence of str
        The scalars shown, in order (those missing from a step's ``values`` are left out).
    number_format : str
        Format spec of the numbers (e.g. ``".3f"``).
    """

    def __init__(self, enabled, keys, number_format=".3g"):
        self.enabled, self.keys, self.number_format = enabled, tuple(keys), number_format
        self.bar = None

    def __call__(self, step, total, values):
        if not self.enabled:
            return
        from occface.utils import ProgressBar
        if self.bar is None:
            start = step - 1
            desc = "train" if start == 0 else f"train (resumed at {start})"
            self.bar = ProgressBar(total=total - start, desc=desc, unit="step")
        postfix = " ".join(f"{k}={values[k]:{self.number_format}}" for k in self.keys
                           if k in values)
        self.bar.update(1, postfix=f"step {step}/{total} {postfix}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _route_library_logs(progress):
    """The library's INFO logs on stderr, each on its own line above the progress bar."""
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


def define_training_console_flags(flag_values=flags.FLAGS):
    """Define the console flags of a training tool, read by :func:`training_console`.

    ``--num_cpu_devices`` (split the CPU into logical devices; 0 = leave as is) and
    ``--progress`` (draw a progress bar on stderr).
    """
    flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices "
                         "(lets --strategy=mirrored run replicas on a CPU-only machine); 0 = "
                         "leave as is.", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_bool("progress", True, "Draw a progress bar on stderr.",
                      flag_values=flag_values)


def training_console(keys, number_format=".3g", flag_values=flags.FLAGS):
    """Set up a training tool's process and console, after TensorFlow is imported.

    Splits the CPU into ``--num_cpu_devices`` logical devices (lets ``--strategy=mirrored`` run
    replicas on a CPU-only machine; 0 leaves it as is), quiets absl's logging to warnings, and
    shows the library's INFO logs on stderr above the progress bar (the flags of
    :func:`define_training_console_flags`).

    Parameters
    ----------
    keys, number_format
        The scalars the bar shows and their format, see :class:`StepProgress`.
    flag_values : absl.flags.FlagValues, optional

    Returns
    -------
    StepProgress
        The progress callback of the run (drawn if ``--progress``).
    """
    from absl import logging as absl_logging
    num_cpu_devices = flag_values.num_cpu_devices
    show_progress = flag_values.progress
    if num_cpu_devices:
        import tensorflow as tf
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    absl_logging.set_verbosity(absl_logging.WARNING)
    progress = StepProgress(show_progress, keys, number_format)
    _route_library_logs(progress)
    return progress


def run_training(prog, train, progress):
    """``train()`` of a training tool, with its failures as one line and the bar closed.

    Invalid settings or data, a ``model_dir`` of another run and a run stopped by non-finite
    losses exit with status 1 and the error's first line; Ctrl-C exits with
    :data:`INTERRUPTED` and says how to resume.

    Parameters
    ----------
    prog : str
        The tool's name for error lines.
    train : callable
        ``train() -> result``; builds the config and runs the library's trainer.
    progress : StepProgress
        Closed however ``train`` ends.

    Returns
    -------
    The result of ``train()``.
    """
    from occface.train import ConfigMismatchError, NonFiniteLossError
    try:
        return train()
    except (ValueError, FileNotFoundError, ConfigMismatchError, NonFiniteLossError) as err:
        progress.close()
        fail(prog, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    except KeyboardInterrupt:
        progress.close()
        fail(prog, "interrupted; run the same command again to resume from the last checkpoint",
             code=INTERRUPTED)
    finally:
        progress.close()
