"""Cutout baseline (DeVries & Taylor, 2017) for input face images."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="occface")
class Cutout(keras.layers.Layer):
    """Zero one ``size × size`` square per image at a uniformly random centre (training only).

    For each image the centre ``(cy, cx)`` is drawn uniformly from all pixel positions
    (``cy ∈ {0..H−1}``, ``cx ∈ {0..W−1}``); the square covers rows
    ``[cy − size//2, cy − size//2 + size)`` and the same columns, **clipped at the image
    borders** (so near a border less than ``size²`` pixels are zeroed). All channels of the
    covered pixels are set to 0 (black, in the package's [0, 255] image convention).
    At inference (``training=False`` or unset) it is the identity. The dtype of the input
    (e.g. ``uint8``) is preserved.

    Parameters
    ----------
    size : int
        Side of the square in pixels.
    seed : int, optional
        Seed of the layer's :class:`keras.random.SeedGenerator`.

    Input shape
    -----------
    ``(N, H, W, C)`` images.

    Output shape
    ------------
    Same as the input.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Cutout(size=4, seed=0)
    >>> y = layer(np.full((1, 16, 16, 3), 255.0, "float32"), training=True)
    >>> int((np.asarray(y)[0, ..., 0] == 0).sum()) <= 16
    True
    """

    def __init__(self, size=16, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(size) != size or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        self.size = int(size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Cutout needs images (N, H, W, C), got shape {tuple(input_shape)}")
        self.built = True

    def hole_mask(self, batch_size, height, width):
        """Boolean ``(batch_size, H, W, 1)``, true inside each image's square."""
        u = keras.random.uniform((batch_size, 2), seed=self.seed_generator)
        cy = ops.floor(u[:, 0] * ops.cast(height, "float32"))
        cx = ops.floor(u[:, 1] * ops.cast(width, "float32"))
        cy = ops.minimum(cy, ops.cast(height, "float32") - 1.0)
        cx = ops.minimum(cx, ops.cast(width, "float32") - 1.0)
        top = ops.reshape(cy - float(self.size // 2), (-1, 1, 1, 1))
        left = ops.reshape(cx - float(self.size // 2), (-1, 1, 1, 1))
        rows = ops.reshape(ops.cast(ops.arange(height), "float32"), (1, -1, 1, 1))
        cols = ops.reshape(ops.cast(ops.arange(width), "float32"), (1, 1, -1, 1))
        in_rows = ops.logical_and(rows >= top, rows < top + self.size)
        in_cols = ops.logical_and(cols >= left, cols < left + self.size)
        return ops.logical_and(in_rows, in_cols)

    def call(self, inputs, training=None):
        if not training or self.size == 0:
            return inputs
        shape = ops.shape(inputs)
        hole = self.hole_mask(shape[0], shape[1], shape[2])
        return ops.where(hole, ops.zeros_like(inputs), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, seed=self.seed)
        return config
