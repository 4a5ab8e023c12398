"""Decoding encoded face images inside ``tf.data`` graphs.

:func:`decode_image` turns image bytes (a file's content, a RecordIO body, a TFRecord ``image``
feature) into ``float32 (h, w, 3)`` RGB in [0, 255] at the pipeline's size, for the training and
the evaluation pipelines alike.
"""

import numpy as np
import tensorflow as tf


def _cv2_decode(data):
    import cv2
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) else None
    if image is None:
        raise ValueError("not a decodable image")
    return image[:, :, ::-1].copy()


def decode_image(data, image_size):
    """Decode image bytes to ``float32 (h, w, 3)`` RGB in [0, 255], resized to ``image_size``
    (int or ``(h, w)``) when it differs.

    JPEG, PNG, GIF and BMP are decoded by TensorFlow; anything else (PGM/PPM, TIFF, WebP, ...)
    by OpenCV through ``tf.numpy_function``. Bytes that are no image raise ``InvalidArgument``
    (the training pipeline drops and counts such elements).
    """
    h, w = (image_size, image_size) if np.isscalar(image_size) else image_size
    head = tf.strings.substr(data, 0, 4)
    tf_format = (tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
                 | tf.equal(head, b"\x89PNG") | tf.equal(tf.strings.substr(head, 0, 3), b"GIF")
                 | tf.equal(tf.strings.substr(head, 0, 2), b"BM"))

    def with_tf():
        img = tf.io.decode_image(data, channels=3, expand_animations=False)
        img.set_shape([None, None, 3])
        return img

    def with_cv2():
        img = tf.numpy_function(_cv2_decode, [data], tf.uint8, stateful=False)
        img.set_shape([None, None, 3])
        return img
    image = tf.cond(tf_format, with_tf, with_cv2)
    shape = tf.shape(image)
    image = tf.cast(image, tf.float32)
    image = tf.cond(tf.logical_and(tf.equal(shape[0], h), tf.equal(shape[1], w)),
                    lambda: image,
                    lambda: tf.image.resize(image, [h, w], antialias=True))
    return tf.ensure_shape(image, [h, w, 3])
