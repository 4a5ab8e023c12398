"""Train the occlusion segmenter (used by tools/verify.py and the inpainting cascade).

    python tools/train_occlusion_segmenter.py --data_dir runs/lfw112 \
        --output occface/assets/occlusion_segmenter/segmenter.keras

Faces: an aligned identity-per-folder tree (tools/prepare_dataset.py output). By default only the
identities of LFW folds 1-7 are used, so LFW folds 8-10 and RMFRD stay unseen for evaluation
(benchmarks/occlusion_estimate.py).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pathlib  # noqa: E402

from absl import flags  # noqa: E402

from occface import cli  # noqa: E402
from occface.paths import data_root  # noqa: E402

PROG = "train_occlusion_segmenter"

flags.DEFINE_string("data_dir", None, "Aligned face tree (identity per folder).")
flags.DEFINE_string("lfw_root", None, "LFW root with pairs.txt to pick training-fold identities "
                    "(default $OCCFACE_DATA/lfw); empty string = use every identity.")
flags.DEFINE_string("output", None, "Where to write the .keras model.")
flags.DEFINE_integer("steps", 1500, "Training steps.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_integer("image_size", 56, "Segmenter input side (divisible by 8).", lower_bound=8)
flags.DEFINE_integer("width", 12, "First-level channels.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
FLAGS = flags.FLAGS


def _output():
    return pathlib.Path(FLAGS.output or "occface/assets/occlusion_segmenter/segmenter.keras")


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    del argv
    if not FLAGS.data_dir or not pathlib.Path(FLAGS.data_dir).is_dir():
        cli.fail(PROG, f"--data_dir {FLAGS.data_dir!r} is not a folder", code=cli.USAGE_ERROR)
    if FLAGS.image_size % 8:
        cli.fail(PROG, f"--image_size must be divisible by 8, got {FLAGS.image_size}",
                 code=cli.USAGE_ERROR)
    if _output().exists() and not FLAGS.overwrite:
        cli.fail(PROG, f"{_output()} exists; pass --overwrite", code=cli.USAGE_ERROR)
    if FLAGS.lfw_root is None and data_root(required=False) is None:
        cli.fail(PROG, "--lfw_root not given and no shared data found (set OCCFACE_DATA, or "
                 "--lfw_root= to use every identity)", code=cli.USAGE_ERROR)
    if FLAGS.lfw_root and not (pathlib.Path(FLAGS.lfw_root) / "pairs.txt").is_file():
        cli.fail(PROG, f"--lfw_root has no pairs.txt: {FLAGS.lfw_root}", code=cli.USAGE_ERROR)


def main(argv):
    del argv
    out = _output()
    import keras

    from occface.data import lfw_training_identities
    from occface.occlusion_estimate import train_occlusion_segmenter
    from occface.utils import ProgressBar, run_metadata, write_json

    identities = None
    if FLAGS.lfw_root != "":
        lfw_root = pathlib.Path(FLAGS.lfw_root) if FLAGS.lfw_root else data_root() / "lfw"
        identities = lfw_training_identities(lfw_root, folds=range(7), min_images=1)
    bar = ProgressBar(10, "epochs", unit="epoch")

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar.update(1, postfix=" ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()))

    model, history = train_occlusion_segmenter(
        FLAGS.data_dir, steps=FLAGS.steps, batch_size=FLAGS.batch_size,
        image_size=FLAGS.image_size, width=FLAGS.width, identities=identities, seed=FLAGS.seed,
        callbacks=[_Progress()])
    bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.keras")
    shipped = keras.models.clone_model(model)  # without the optimizer state: 1/3 of the size
    shipped.set_weights(model.get_weights())
    shipped.save(tmp)
    os.replace(tmp, out)
    settings = {k: FLAGS[k].value for k in ("data_dir", "steps", "batch_size", "image_size",
                                            "width", "seed")}
    settings["identities"] = len(identities) if identities else "all"
    write_json(out.with_suffix(".json"), {**run_metadata(settings), "history": history,
                                          "parameters": int(model.count_params())})
    print(f"wrote {out} ({model.count_params()} parameters); final loss "
          f"{history['loss'][-1]:.4f}, pixel accuracy {history['pixel_accuracy'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
