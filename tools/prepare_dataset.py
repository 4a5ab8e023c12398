"""Detect and align a raw identity-per-folder face dataset (e.g. LFW) into aligned images or
TFRecord shards plus a manifest. Resumable: re-running with the same flags skips finished work.

Example::

    python tools/prepare_dataset.py --input_dir ../shared/data/lfw/lfw-deepfunneled \\
        --output runs/lfw112 --size 112 --format images --workers 2
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from occface.cli import import_tensorflow_quietly  # noqa: E402
import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "Raw dataset: <input_dir>/<identity>/<images>.")
flags.DEFINE_string("output", None, "Output directory (created; re-use it to resume).")
flags.DEFINE_string("size", "112", "Output side in pixels, or HxW (e.g. 112x96).")
flags.DEFINE_enum("format", "images", ["images", "tfrecord"], "Output format.")
flags.DEFINE_integer("workers", 2, "Worker processes.")
flags.DEFINE_integer("shard_size", 1000, "Images per TFRecord shard.")
flags.DEFINE_enum("image_format", "jpg", ["jpg", "png"], "Encoding of the aligned images.")
flags.DEFINE_integer("quality", 95, "JPEG quality.")
flags.DEFINE_enum("no_face", "center", ["center", "skip"],
                  "Images without a detected face: write a centre crop, or leave them out.")
flags.DEFINE_float("score_threshold", 0.6, "Face detector score threshold.")
flags.DEFINE_enum("pick", "central", ["central", "largest", "score"],
                  "Which face to align when several are found.")
flags.mark_flags_as_required(["input_dir", "output"])


def _parse_size(text):
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--size must be an integer or HxW, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return tuple(values)
    raise ValueError(f"--size must be an integer or HxW, got {text!r}")


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
        print(f"prepare_dataset: error: {e}", file=sys.stderr)
        return 1
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
    app.run(lambda argv: sys.exit(main(argv)))
