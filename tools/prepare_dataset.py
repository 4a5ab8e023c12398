"""Detect and align a raw identity-per-folder face dataset (e.g. LFW) into aligned images or
TFRecord shards plus a manifest. Resumable: re-running with the same flags skips finished work.

Example::

    python tools/prepare_dataset.py --input_dir ../shared/data/lfw/lfw-deepfunneled \\
        --output runs/lfw112 --size 112 --format images --workers 2
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import flags  # noqa: E402

from occface import cli  # noqa: E402

FLAGS = flags.FLAGS
PROG = "prepare_dataset"
flags.DEFINE_string("input_dir", None, "Raw dataset: <input_dir>/<identity>/<images>.")
flags.DEFINE_string("output", None, "Output directory (created; re-use it to resume).")
flags.DEFINE_string("size", "112", "Output side in pixels, or HxW (e.g. 112x96); positive.")
flags.DEFINE_enum("format", "images", ["images", "tfrecord"], "Output format.")
flags.DEFINE_integer("workers", 2, "Worker processes.", lower_bound=1)
flags.DEFINE_integer("shard_size", 1000, "Images per TFRecord shard.", lower_bound=1)
flags.DEFINE_enum("image_format", "jpg", ["jpg", "png"], "Encoding of the aligned images.")
flags.DEFINE_integer("quality", 95, "JPEG quality.", lower_bound=0, upper_bound=100)
flags.DEFINE_enum("no_face", "center", ["center", "skip"],
                  "Images without a detected face: write a centre crop, or leave them out.")
flags.DEFINE_float("score_threshold", 0.6, "Face detector score threshold.")
flags.DEFINE_enum("pick", "central", ["central", "largest", "score"],
                  "Which face to align when several are found.")
flags.mark_flags_as_required(["input_dir", "output"])


def _parse_size(text):
    """``"112"`` -> 112, ``"112x96"`` -> (112, 96); ``ValueError`` naming ``--size`` otherwise."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--size must be an integer or HxW, got {text!r}") from None
    if len(values) not in (1, 2):
        raise ValueError(f"--size must be an integer or HxW, got {text!r}")
    if min(values) < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    del argv
    try:
        _parse_size(FLAGS.size)
    except ValueError as err:
        cli.fail(PROG, str(err))
    if not os.path.isdir(FLAGS.input_dir):
        cli.fail(PROG, f"input directory not found: {FLAGS.input_dir}")


def main(argv):
    del argv
    from occface.data.prepare import prepare_dataset
    from occface.utils import ProgressBar
    bars = []

    def on_start(todo, done):
        if done:
            print(f"resuming: {done} images already prepared, {todo} to go", file=sys.stderr)
        bars.append(ProgressBar(total=todo, desc="prepare", unit="img"))

    try:
        size = _parse_size(FLAGS.size)
        manifest = prepare_dataset(
            FLAGS.input_dir, FLAGS.output, size=size, format=FLAGS.format,
            workers=FLAGS.workers, shard_size=FLAGS.shard_size,
            image_format=FLAGS.image_format, quality=FLAGS.quality, no_face=FLAGS.no_face,
            score_threshold=FLAGS.score_threshold, pick=FLAGS.pick,
            progress=lambda n: bars[0].update(n), on_start=on_start)
    except (ValueError, FileNotFoundError, OSError) as e:
        cli.fail(PROG, str(e))
    finally:
        if bars:
            bars[0].close()
    c = manifest["counts"]
    rate = manifest["images_per_second"]
    print(f"{FLAGS.output}: "
          f"total {c['total']}, ok {c['ok']}, no face {c['no_face']}, unreadable "
          f"{c['unreadable']}, skipped (already done) {c['skipped']}, written {c['written']}; "
          f"{manifest['num_classes']} identities; {manifest['processed']} processed in "
          f"{manifest['seconds']:.1f} s ({rate if rate is not None else '-'} images/s)")
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
