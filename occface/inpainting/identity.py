"""The frozen recognizer R of ID-GAN: low/high-layer feature adapter and identity centroids.

R is pluggable: an occface recognizer (``occface.models`` IR-ResNet family, where the low layer
defaults to the output of stage 2) or any callable / SavedModel signature mapping faces to
embeddings (then only the high-level term is available).
"""

import logging
import re

import numpy as np

import keras
from keras import ops

log = logging.getLogger(__name__)

_STAGE2_PATTERN = re.compile(r"^stage2_block(\d+)_add$")


def _find_low_layer(model):
    """Name of the last stage-2 block output of an occface IR-ResNet, or None."""
    best = None
    for layer in model.layers:
        match = _STAGE2_PATTERN.match(layer.name)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), layer.name)
    return best[1] if best else None


def _first_tensor(result):
    if isinstance(result, dict):
        for key in ("embedding", "embeddings", "output_0"):
            if key in result:
                return result[key]
        if len(result) == 1:
            return next(iter(result.values()))
        raise ValueError(f"cannot tell the embedding among the outputs {sorted(result)}; "
                         "wrap the model in a callable returning the embedding")
    if isinstance(result, (list, tuple)):
        return result[-1]
    return result


class RecognizerFeatures:
    """Frozen recognizer adapter returning ``(low, high)`` features of faces.

    Parameters
    ----------
    recognizer : keras.Model or callable
        A Keras functional model (e.g. ``occface.models.build_recognizer(...)``) mapping
        (N, H, W, 3) images in [0, 255] to (N, D) embeddings; or any callable with that behaviour
        (e.g. a SavedModel signature; a dict result is searched for ``"embedding"``).
    low_layer : str, None or "auto"
        Name of the layer whose output is the low-level feature map. ``"auto"`` picks the last
        ``stage2_block*_add`` layer of an occface IR-ResNet (falls back to high only, with a log
        message, when there is none); ``None`` means high only.
    input_size : int, optional
        Side the recognizer expects; faces of another size are bilinearly resized first (e.g.
        128-pixel inpainting faces into a 112-pixel recognizer). Default: taken from a Keras
        model's input shape, else no resizing.

    Notes
    -----
    The recognizer is frozen (``trainable = False``) and called with ``training=False``; gradients
    still flow through it to its input (needed to train the generator).
    """

    def __init__(self, recognizer, low_layer="auto", input_size=None):
        self.recognizer = recognizer
        self.low_layer = None
        if isinstance(recognizer, keras.Model):
            recognizer.trainable = False
            if input_size is None:
                shape = recognizer.input_shape
                if isinstance(shape, list):
                    shape = shape[0]
                input_size = shape[1] if shape and len(shape) == 4 else None
            if low_layer == "auto":
                low_layer = _find_low_layer(recognizer)
                if low_layer is None:
                    log.info("recognizer %s has no stage-2 layer: instance loss uses the "
                             "embedding only", recognizer.name)
            if low_layer is not None:
                try:
                    low = recognizer.get_layer(low_layer).output
                except ValueError as err:
                    raise ValueError(f"recognizer {recognizer.name!r} has no layer "
                                     f"{low_layer!r}") from err
                self._model = keras.Model(recognizer.inputs, [low, recognizer.output],
                                          name=f"{recognizer.name}_features")
                self._model.trainable = False
                self.low_layer = low_layer
            else:
                self._model = None
        else:
            if not callable(recognizer):
                raise ValueError(f"recognizer must be a keras.Model or callable, got "
                                 f"{type(recognizer).__name__}")
            if low_layer not in (None, "auto"):
                raise ValueError("low_layer needs a Keras functional recognizer")
            self._model = None
        self.input_size = None if input_size is None else int(input_size)

    def _prepare(self, images):
        images = ops.cast(images, "float32")
        if self.input_size is not None and (images.shape[1] != self.input_size
                                            or images.shape[2] != self.input_size):
            images = ops.image.resize(images, (self.input_size, self.input_size),
                                      interpolation="bilinear")
        return images

    @property
    def has_low(self):
        """Whether low-level features are available."""
        return self.low_layer is not None

    def __call__(self, images):
        """Features of faces.

        Parameters
        ----------
        images : (N, H, W, 3) float tensor in [0, 255]

        Returns
        -------
        (low, high) : low (N, h, w, c) tensor or None, high (N, D) float32 tensor.
        """
        images = self._prepare(images)
        if self._model is not None:
            low, high = self._model(images, training=False)
            return ops.cast(low, "float32"), ops.cast(high, "float32")
        if isinstance(self.recognizer, keras.Model):
            high = self.recognizer(images, training=False)
        else:
            high = self.recognizer(images)
        return None, ops.cast(_first_tensor(high), "float32")

    def embed(self, images):
        """High-level features only: (N, D) float32."""
        return self(images)[1]


def identity_centroids(recognizer, dataset, num_classes=None, normalize=False,
                       return_counts=False):
    """Identity centroids ``f_id``: mean high-level feature of each training identity (Eq. 5).

    Parameters
    ----------
    recognizer : RecognizerFeatures, keras.Model or callable
        Anything giving (N, D) high-level features of (N, H, W, 3) [0, 255] faces (a
        :class:`RecognizerFeatures` is used as is, other objects are wrapped, high only).
    dataset : iterable of (images, labels)
        Batches: images (B, H, W, 3) in [0, 255], labels (B,) int identity indices in
        ``[0, num_classes)`` (a ``tf.data.Dataset`` or a list of numpy pairs). Extra elements of a
        batch tuple are ignored.
    num_classes : int, optional
        Number of identities C (default: largest label + 1).
    normalize : bool
        L2-normalise each feature before averaging (for cosine-scored recognizers).
    return_counts : bool
        Also return the number of faces per identity.

    Returns
    -------
    centroids : (C, D) float32 numpy array
        Rows of identities without any face are zero.
    counts : (C,) int64 numpy array, only with ``return_counts``.
    """
    features = recognizer if isinstance(recognizer, RecognizerFeatures) \
        else RecognizerFeatures(recognizer, low_layer=None)
    sums, counts = None, None
    for batch in dataset:
        images, labels = batch[0], batch[1]
        high = np.asarray(ops.convert_to_numpy(features.embed(images)), np.float64)
        if normalize:
            high = high / np.maximum(np.linalg.norm(high, axis=1, keepdims=True), 1e-12)
        labels = np.asarray(ops.convert_to_numpy(labels)).astype(np.int64).reshape(-1)
        if labels.shape[0] != high.shape[0]:
            raise ValueError(f"batch has {high.shape[0]} images but {labels.shape[0]} labels")
        if labels.size and labels.min() < 0:
            raise ValueError("labels must be non-negative identity indices")
        needed = int(labels.max()) + 1 if labels.size else 0
        if num_classes is not None and needed > num_classes:
            raise ValueError(f"label {needed - 1} out of range for num_classes={num_classes}")
        size = max(needed, num_classes or 0, 0 if sums is None else sums.shape[0])
        if sums is None:
            sums = np.zeros((size, high.shape[1]))
            counts = np.zeros(size, np.int64)
        elif size > sums.shape[0]:
            sums = np.pad(sums, ((0, size - sums.shape[0]), (0, 0)))
            counts = np.pad(counts, (0, size - counts.shape[0]))
        np.add.at(sums, labels, high)
        np.add.at(counts, labels, 1)
    if sums is None:
        raise ValueError("dataset is empty: no faces to compute identity centroids from")
    centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return (centroids, counts) if return_counts else centroids
