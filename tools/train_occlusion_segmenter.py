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
from occface.cli import import_tensorflow_quietly  # noqa: E402
import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

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


def main(argv):
    if len(argv) > 1:
        print(f"train_occlusion_segmenter: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    import pathlib
    if not FLAGS.data_dir or not pathlib.Path(FLAGS.data_dir).is_dir():
        print(f"train_occlusion_segmenter: error: --data_dir {FLAGS.data_dir!r} is not a folder",
              file=sys.stderr)
        return 2
    out = pathlib.Path(FLAGS.output or "occface/assets/occlusion_segmenter/segmenter.keras")
    if out.exists() and not FLAGS.overwrite:
        print(f"train_occlusion_segmenter: error: {out} exists; pass --overwrite",
              file=sys.stderr)
        return 2
    import keras

    from occface.data import lfw_training_identities
    from occface.occlusion_estimate import train_occlusion_segmenter
    from occface.paths import data_root
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
    app.run(main)
