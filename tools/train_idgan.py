"""Train ID-GAN (identity-diversity inpainting) in a custom loop under tf.distribute.

The logic lives in :func:`occface.inpainting.trainer.train_idgan`; this tool maps flags (one per
:class:`~occface.inpainting.trainer.IDGANConfig` field, same names) to the config, draws a
progress bar and turns user mistakes into one-line errors. Re-running the same command resumes
from the newest checkpoint in ``--model_dir``; a ``--model_dir`` holding a different configuration
is refused. Stages: ``--warmup_steps`` reconstruction-only steps, then adversarial + structure +
identity terms.

Examples::

    # CPU run, 64x64 faces with 24x24 holes, LFW folds 0-6 (+ unpaired identities) for training,
    # identity terms with the package's recognizer ("wID"); drop --recognizer_path for "w/oID"
    python tools/train_idgan.py --data_dir=runs/lfw112 --image_size=64 \\
        --lfw_pairs=../shared/data/lfw/pairs.txt --train_folds=0-6 \\
        --recognizer_path=runs/lcd_r18w16/model.keras --gen_width=16 --critic_width=16 \\
        --batch_size=16 --steps=6000 --warmup_steps=1500 --model_dir=runs/idgan_wid_64

    # The paper's setting (128x128, 48x48 holes) on a GPU, from a flagfile
    python tools/train_idgan.py --flagfile=my_idgan.cfg --model_dir=runs/idgan_128
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import flags, logging as absl_logging  # noqa: E402

from occface import cli  # noqa: E402

# The flags are generated from IDGANConfig, whose package (occface.inpainting) imports
# TensorFlow: unlike the other tools, this one imports it before parsing its flags.
cli.import_tensorflow_quietly()

FLAGS = flags.FLAGS
PROG = "train_idgan"

HELP = {
    "data_dir": "Training faces: an aligned identity-per-folder tree (tools/prepare_dataset.py; "
                "its records.csv gives the parser's landmarks) or anything "
                "occface.data.training_dataset reads.",
    "image_size": "Side of the square faces (128 paper, 112, 64 for CPU runs); multiple of 4.",
    "augment": "Flip, rotation (+-15 deg) and shift augmentation.",
    "hole_kinds": "Hole shapes drawn per image: block and/or occface.data kinds (mask, "
                  "sunglasses, upper, lower, left, right).",
    "hole_size": "Side of block holes in pixels; 0 = 0.375*image_size (48 at 128, as in the "
                 "paper).",
    "lfw_pairs": "pairs.txt defining LFW folds; with --train_folds, train only on identities "
                 "disjoint from the other folds.",
    "train_folds": "0-based LFW folds whose identities are trained on, e.g. 0-6.",
    "include_unpaired": "With --train_folds: also train on identities that appear in no pair.",
    "min_images_per_identity": "With --train_folds: keep identities with at least this many "
                               "images.",
    "gen_width": "Generator base width (GLCIC: 64).",
    "dilation_rates": "Rates of the generator's dilated convolutions.",
    "critic_width": "Critics' first-stage width.",
    "critic_max_width": "Cap of the critics' doubling width.",
    "critic_norm": "Critic normalisation: layer or none (never batch norm: WGAN-GP).",
    "local_patch": "Side of the local critic's patch around the hole; 0 = image_size/2.",
    "init_generator": "generator.keras or ID-GAN model_dir whose weights start a new run (e.g. a "
                      "shared reconstruction-only warm-up); ignored when resuming.",
    "loss_reduction": "sum (per-image sums; the paper's weights) or mean over pixels/features.",
    "gamma": "Spatial discount of the hole's L1 weight per pixel of distance (0.99).",
    "rec_hole_weight": "Weight of the discounted hole L1.",
    "rec_valid_weight": "Weight of the L1 outside the hole.",
    "adv_global_weight": "Weight of the global adversarial term (paper: 300).",
    "adv_local_weight": "Weight of the local adversarial term (paper: 300).",
    "gp_weight": "WGAN-GP gradient penalty lambda.",
    "structure_weight": "lambda_S of the parsing (structure) loss (paper: 0.05); 0 = off.",
    "structure_target": "hard (argmax of S(truth), the paper) or soft targets.",
    "identity_weight": "lambda_R of instance + identity-diversity losses (paper: 2e-4); 0 = off.",
    "alpha_low": "alpha_l of the low-layer instance term (0.5).",
    "alpha_high": "alpha_h of the high-layer instance term (0.05).",
    "beta": "beta of the identity-diversity hinge (0.5).",
    "id_normalize": "L2-normalise embeddings for the diversity term and the centroids.",
    "recognizer_path": "Frozen recognizer for the identity terms (.keras, a training model_dir, "
                       "or a float-input SavedModel); empty = w/oID.",
    "recognizer_low_layer": "Layer giving low-level features (auto = last stage-2 block; empty "
                            "= embedding only).",
    "parser_path": "Face parser .keras for the structure loss; empty = train the default "
                   "landmark parser into model_dir/parser.keras.",
    "parser_width": "Default parser base width.",
    "parser_epochs": "Default parser training epochs.",
    "parser_max_images": "Faces used to train the default parser.",
    "parser_batch_size": "Default parser batch size.",
    "parser_learning_rate": "Default parser Adam learning rate.",
    "centroid_batches": "Batches of clean training faces for the identity centroids; 0 = all.",
    "batch_size": "Global batch size (over all replicas and workers).",
    "steps": "Generator updates (training steps).",
    "warmup_steps": "Reconstruction-only steps before the adversarial stage.",
    "critic_steps": "Critic updates per generator update (WGAN-GP: 5).",
    "g_learning_rate": "Generator Adam learning rate (1e-4).",
    "g_beta1": "Generator Adam beta1 (0.9).",
    "g_beta2": "Generator Adam beta2.",
    "d_learning_rate": "Critics' Adam learning rate (1e-4).",
    "d_beta1": "Critics' Adam beta1 (0.5).",
    "d_beta2": "Critics' Adam beta2 (0.9).",
    "strategy": "tf.distribute strategy: default, mirrored, multi_worker (reads TF_CONFIG).",
    "seed": "Random seed (initialisation, data order, holes, gradient-penalty epsilon).",
    "deterministic": "tf.config.experimental.enable_op_determinism().",
    "model_dir": "Output directory: checkpoints, TensorBoard logs, generator.keras, "
                 "config.json.",
    "checkpoint_interval": "Steps between checkpoints.",
    "keep_checkpoints": "Checkpoints kept.",
    "summary_interval": "Steps between TensorBoard scalar summaries.",
    "image_interval": "Steps between TensorBoard image grids (input|mask|output|truth); 0 = off.",
    "preview_images": "Faces in the image grid.",
    "max_nonfinite_steps": "Consecutive non-finite steps that stop the run.",
}


def _define_flags():
    from occface.inpainting.trainer import IDGANConfig
    cli.define_config_flags(IDGANConfig, help_texts=HELP)
    flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices "
                         "(lets --strategy=mirrored run replicas on a CPU-only machine); 0 = leave "
                         "as is.", lower_bound=0)
    flags.DEFINE_bool("progress", True, "Draw a progress bar on stderr.")


_define_flags()


def _fail(message, code=1):
    cli.fail(PROG, message, code)


def _config_dict():
    from occface.inpainting.trainer import IDGANConfig
    cfg = cli.config_from_flags(IDGANConfig)
    try:
        cfg["train_folds"] = cli.parse_int_ranges(cfg["train_folds"])
        cfg["dilation_rates"] = [int(v) for v in cfg["dilation_rates"]]
    except ValueError as err:
        _fail(f"bad integer list: {err}", code=2)
    return cfg


def _check(argv):
    """Flag and path mistakes, before any model or data is built."""
    del argv
    cfg = _config_dict()
    if not cfg["model_dir"]:
        _fail("--model_dir is required")
    if not cfg["data_dir"]:
        _fail("--data_dir is required")
    if not os.path.exists(cfg["data_dir"]):
        _fail(f"training data not found: --data_dir={cfg['data_dir']}")
    for flag in ("lfw_pairs", "parser_path"):
        if cfg[flag] and not os.path.isfile(cfg[flag]):
            _fail(f"--{flag} file not found: {cfg[flag]}")
    if cfg["init_generator"] and not os.path.exists(cfg["init_generator"]):
        _fail(f"--init_generator not found: {cfg['init_generator']}")
    if cfg["recognizer_path"] and not os.path.exists(cfg["recognizer_path"]):
        _fail(f"--recognizer_path not found: {cfg['recognizer_path']}")
    if cfg["strategy"] == "multi_worker" and not os.environ.get("TF_CONFIG"):
        _fail("--strategy=multi_worker needs the TF_CONFIG environment variable")


class _Progress:
    """Console progress bar (created at the first step, so a resumed run counts only its steps)."""

    KEYS = ("loss_g", "reconstruction", "loss_d", "wasserstein_global")

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
        postfix = " ".join(f"{k}={values[k]:.3g}" for k in self.KEYS if k in values)
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


def main(argv):
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

    from occface.inpainting.trainer import IDGANConfig, train_idgan
    from occface.train import ConfigMismatchError, NonFiniteLossError
    try:
        config = IDGANConfig.from_dict(cfg)
        result = train_idgan(config, progress=progress)
    except (ValueError, FileNotFoundError, ConfigMismatchError, NonFiniteLossError) as err:
        progress.close()
        _fail(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    except KeyboardInterrupt:
        progress.close()
        _fail("interrupted; run the same command again to resume from the last checkpoint",
              code=130)
    progress.close()
    final = result.get("final", {})
    summary = ", ".join(f"{k}={final[k]:.4g}" for k in _Progress.KEYS if k in final)
    ips = result.get("images_per_sec")
    if ips:
        summary += f", {ips:.1f} images/s"
    terms = "+".join(t for t, on in (("structure", result["structure"]),
                                     ("identity", result["identity"])) if on) or "no"
    print(f"trained to step {result['step']} ({terms} extra terms): {summary}; "
          f"generator: {result['generator_path']}")


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
