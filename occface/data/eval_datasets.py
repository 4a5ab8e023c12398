"""``tf.data`` pipelines of evaluation: pre-aligned face files in order, as single images
(:func:`image_dataset`), verification pairs (:func:`pairs_dataset`) or face templates
(:func:`templates_dataset`).

Unlike training, nothing is shuffled, augmented or dropped: a missing file raises before the
pipeline is built and a file that does not decode raises while it runs. Images come out as
``float32 (B, S, S, 3)`` in [0, 255] RGB.
"""

import os

import numpy as np
import tensorflow as tf

from occface.data.decode import decode_image

AUTOTUNE = tf.data.AUTOTUNE


def image_dataset(paths, image_size=112, batch_size=64, flip=False,
                  num_parallel_calls=AUTOTUNE):
    """Images from files, in order, as ``float32 (B, S, S, 3)`` batches in [0, 255].

    For evaluation of pre-aligned faces (e.g. ``runs/lfw112``). A file that does not decode
    raises (evaluation must not silently drop images). With ``flip=True`` each element is
    ``(image, flipped image)``.
    """
    paths = [str(p) for p in paths]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image file(s) missing, e.g. {missing[0]}")
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string) if paths else
                                            tf.zeros([0], tf.string))

    def load(p):
        image = decode_image(tf.io.read_file(p), image_size)
        return (image, tf.reverse(image, [1])) if flip else image
    return ds.map(load, num_parallel_calls=num_parallel_calls,
                  deterministic=True).batch(batch_size).prefetch(AUTOTUNE)


def pairs_dataset(pairs, root, image_size=112, batch_size=64, ext=None):
    """Verification pairs as batches ``((images_a, images_b), issame)``.

    Parameters
    ----------
    pairs : LFWPairs
        From :func:`occface.data.read_lfw_pairs`.
    root : str or path
        Image tree laid out like ``lfw-deepfunneled`` (an aligned tree from
        ``tools/prepare_dataset.py``).
    """
    a, b = pairs.image_paths(root, ext=ext)
    da = image_dataset(a, image_size, batch_size).unbatch()
    db = image_dataset(b, image_size, batch_size).unbatch()
    labels = tf.data.Dataset.from_tensor_slices(np.asarray(pairs.issame, bool))
    return tf.data.Dataset.zip(((da, db), labels)).batch(batch_size).prefetch(AUTOTUNE)


def templates_dataset(templates, image_size=112, batch_size=64):
    """Images of face templates (sets of images per subject/template), for template matching.

    Parameters
    ----------
    templates : dict or list of (template_id, list of paths)

    Returns
    -------
    dataset : tf.data.Dataset
        Batches ``(images float32 (B, S, S, 3), template_index int32 (B,))``; aggregate the
        embeddings per template with e.g. ``tf.math.unsorted_segment_mean``.
    template_ids : list
        ``template_ids[template_index]``.
    """
    items = list(templates.items()) if isinstance(templates, dict) else list(templates)
    ids, paths, index = [], [], []
    for t, (tid, files) in enumerate(items):
        ids.append(tid)
        files = list(files)
        if not files:
            raise ValueError(f"template {tid!r} has no images")
        paths.extend(str(f) for f in files)
        index.extend([t] * len(files))
    images = image_dataset(paths, image_size, batch_size).unbatch()
    idx = tf.data.Dataset.from_tensor_slices(np.asarray(index, np.int32))
    return tf.data.Dataset.zip((images, idx)).batch(batch_size).prefetch(AUTOTUNE), ids
