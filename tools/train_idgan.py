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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import flags  # noqa: E402

from occface import cli, cli_training  # noqa: E402
from occface.inpainting.config import IDGANConfig  # noqa: E402

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


# One flag per IDGANConfig field (same name and default, help from HELP);
# occface.inpainting.config imports no TensorFlow.
cli.define_config_flags(IDGANConfig, help_texts=HELP)
# Tool-only flags.
cli_training.define_training_console_flags()  # --num_cpu_devices, --progress


def _fail(message, code=1):
    cli.fail(PROG, message, code)


def _config_dict():
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
    cli_training.check_training_inputs(PROG, cfg, files=("lfw_pairs", "parser_path"),
                                       paths=("init_generator", "recognizer_path"))
    if cfg["strategy"] == "multi_worker" and not os.environ.get("TF_CONFIG"):
        _fail("--strategy=multi_worker needs the TF_CONFIG environment variable")


#: The scalars the progress bar and the final line show.
SCALARS = ("loss_g", "reconstruction", "loss_d", "wasserstein_global")


def main(argv):
    del argv
    cfg = _config_dict()
    progress = cli_training.training_console(SCALARS, ".3g")

    def train():
        from occface.inpainting.trainer import train_idgan
        return train_idgan(IDGANConfig.from_dict(cfg), progress=progress)

    result = cli_training.run_training(PROG, train, progress)
    final = result.get("final", {})
    summary = ", ".join(f"{k}={final[k]:.4g}" for k in SCALARS if k in final)
    ips = result.get("images_per_sec")
    if ips:
        summary += f", {ips:.1f} images/s"
    terms = "+".join(t for t, on in (("structure", result["structure"]),
                                     ("identity", result["identity"])) if on) or "no"
    print(f"trained to step {result['step']} ({terms} extra terms): {summary}; "
          f"generator: {result['generator_path']}")


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
