"""occface TFRecord shards and their ``manifest.json``.

Each record is a ``tf.train.Example`` with features

- ``image``: encoded image bytes (JPEG or PNG), RGB content;
- ``label``: int64 identity index into the manifest's ``classes``;
- ``identity``: bytes, the identity name;
- ``landmarks``: 10 floats, the five ``(x, y)`` landmarks in image pixels (template landmarks for
  images written without a detected face);
- ``found``: int64, 1 if a face was detected;
- ``source``: bytes, the path of the original image relative to the input tree.

``manifest.json`` (written by :func:`occface.data.prepare_dataset` or :func:`write_tfrecords`)
holds ``format: "occface-tfrecord"``, ``classes``, ``num_classes``, ``num_images``,
``image_size`` and ``shards: [{"file", "count"}]`` (files relative to the manifest).
"""

import json
import logging
import pathlib

import numpy as np
import tensorflow as tf

from occface.utils import write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TFRECORD_FORMAT = "occface-tfrecord"
IMAGES_FORMAT = "occface-images"

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "identity": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "landmarks": tf.io.FixedLenFeature([10], tf.float32, default_value=[0.0] * 10),
    "found": tf.io.FixedLenFeature([], tf.int64, default_value=1),
    "source": tf.io.FixedLenFeature([], tf.string, default_value=b""),
}


def make_example(encoded, label, identity="", landmarks=None, found=True, source=""):
    """Serialise one face as a ``tf.train.Example`` (bytes)."""
    landmarks = np.zeros(10, np.float32) if landmarks is None else np.asarray(
        landmarks, np.float32).reshape(10)

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    feature = {
        "image": b(bytes(encoded)),
        "label": i(label),
        "identity": b(str(identity).encode("utf-8")),
        "landmarks": tf.train.Feature(float_list=tf.train.FloatList(value=landmarks.tolist())),
        "found": i(bool(found)),
        "source": b(str(source).encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(serialized):
    """Parse one serialized example (graph-friendly) into a dict of tensors (see ``FEATURES``)."""
    return tf.io.parse_single_example(serialized, FEATURES)


def write_shard(path, examples):
    """Write serialized examples to one TFRecord file atomically (temp file + rename).

    Returns the number of records written.
    """
    path = pathlib.Path(path)
    tmp = path.with_name("." + path.name + ".tmp")
    n = 0
    with tf.io.TFRecordWriter(str(tmp)) as w:
        for ex in examples:
            w.write(ex)
            n += 1
    tmp.replace(path)
    return n


def write_tfrecords(output_dir, encoded_images, labels, classes=None, landmarks=None,
                    shard_size=1000, image_size=None, sources=None):
    """Write already-encoded face images as occface TFRecord shards + ``manifest.json``.

    Parameters
    ----------
    output_dir : str or path
    encoded_images : sequence of bytes
    labels : sequence of int
    classes : list of str, optional
        Identity names (``classes[label]``); defaults to ``"0", "1", ...``.
    landmarks : array-like (N, 5, 2), optional
    shard_size : int
        Records per shard.

    Returns
    -------
    pathlib.Path
        The manifest path.
    """
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    labels = [int(x) for x in labels]
    if len(labels) != len(encoded_images):
        raise ValueError("need one label per image")
    if classes is None:
        classes = [str(i) for i in range(max(labels) + 1 if labels else 0)]
    shards = []
    for s, start in enumerate(range(0, len(labels), shard_size)):
        stop = min(start + shard_size, len(labels))
        name = f"shard-{s:05d}.tfrecord"
        n = write_shard(output_dir / name, (
            make_example(encoded_images[i], labels[i], classes[labels[i]],
                         None if landmarks is None else landmarks[i], True,
                         "" if sources is None else sources[i]) for i in range(start, stop)))
        shards.append({"file": name, "count": n})
    manifest = {"format": TFRECORD_FORMAT, "version": 1, "image_size": image_size,
                "classes": list(classes), "num_classes": len(classes),
                "num_images": len(labels), "shards": shards}
    write_json(output_dir / MANIFEST, manifest)
    return output_dir / MANIFEST


def read_manifest(path):
    """Read an occface ``manifest.json`` (path of the file or of its directory).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not an occface manifest.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"occface manifest not found: {path}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if manifest.get("format") not in (TFRECORD_FORMAT, IMAGES_FORMAT):
        raise ValueError(f"{path}: not an occface manifest (format={manifest.get('format')!r})")
    manifest["_dir"] = str(path.parent)
    return manifest
