"""Stateless per-image training augmentation in ``tf.data`` graphs: random flip, rotation and
shift (:func:`augment_image`) and Cutout (:func:`apply_cutout`).

Every random draw comes from a stateless op seeded by the caller (the training pipeline passes
``[seed, element index]``), so a seed fixes the result and a restored iterator continues it.
Images are ``float32 (H, W, C)`` in [0, 255].
"""

import numpy as np
import tensorflow as tf


def _affine_params(seed, h, w, max_rotation, max_shift):
    """Projective transform (8 numbers, output -> input pixel coordinates) for a random rotation
    about the image centre by up to ``max_rotation`` degrees and a shift up to ``max_shift``
    (fraction of the side)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    angle = tf.random.stateless_uniform([], seeds[0], -1.0, 1.0) * (max_rotation * np.pi / 180)
    shift = tf.random.stateless_uniform([2], seeds[1], -1.0, 1.0) * max_shift
    dx, dy = shift[0] * w, shift[1] * h
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    c, s = tf.cos(angle), tf.sin(angle)
    # input = R(-angle) (output - centre - shift) + centre
    a0, a1 = c, s
    b0, b1 = -s, c
    a2 = cx - a0 * (cx + dx) - a1 * (cy + dy)
    b2 = cy - b0 * (cx + dx) - b1 * (cy + dy)
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def augment_image(image, seed, flip=True, max_rotation=15.0, max_shift=0.05,
                  fill_mode="REFLECT", mask=None):
    """Random horizontal flip, rotation (±``max_rotation`` degrees) and shift (±``max_shift`` of
    the side), all stateless from ``seed`` (int (2,)). ``image``: float32 (H, W, C).

    ``mask`` (H, W, 1), if given, gets the same geometric transform (nearest neighbour, zero fill)
    and the pair is returned.
    """
    seed = tf.cast(seed, tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    h, w = image.shape[0], image.shape[1]
    if flip:
        do_flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = tf.cond(do_flip, lambda: tf.reverse(image, [1]), lambda: image)
        if mask is not None:
            mask = tf.cond(do_flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    if max_rotation or max_shift:
        params = _affine_params(seeds[1], h, w, float(max_rotation), float(max_shift))[None]
        image = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=params, output_shape=[h, w], fill_value=0.0,
            interpolation="BILINEAR", fill_mode=fill_mode)[0]
        if mask is not None:
            mask = tf.raw_ops.ImageProjectiveTransformV3(
                images=mask[None], transforms=params, output_shape=[h, w], fill_value=0.0,
                interpolation="NEAREST", fill_mode="CONSTANT")[0]
    return image if mask is None else (image, mask)


def apply_cutout(image, seed, size, prob=1.0, fill=127.5):
    """Cutout (DeVries & Taylor 2017): a ``size`` x ``size`` square centred at a random pixel
    (clipped at the border) set to ``fill`` (127.5 = zero after the models' normalisation),
    applied with probability ``prob``. Stateless from ``seed``."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    h, w = image.shape[0], image.shape[1]
    centre = tf.random.stateless_uniform([2], seeds[0], 0, 1)
    cy = tf.cast(centre[0] * h, tf.int32)
    cx = tf.cast(centre[1] * w, tf.int32)
    rows = tf.range(h)[:, None]
    cols = tf.range(w)[None, :]
    half = size // 2
    box = ((rows >= cy - half) & (rows < cy - half + size) & (cols >= cx - half)
           & (cols < cx - half + size))
    box = box & (tf.random.stateless_uniform([], seeds[1]) < prob)
    return tf.where(box[..., None], tf.cast(fill, image.dtype), image)
