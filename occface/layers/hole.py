"""Keras 3 layers that put a hole into an image and take only the hole from a generator.

The two ends of the ID-GAN inpainting generator (:func:`occface.inpainting.build_generator`),
kept with the other layers so that a saved generator loads wherever the layers are registered
(:func:`occface.models.io.register_custom_objects`). Masks are ``(N, H, W, 1)`` with 1 = hole.
"""

import keras
from keras import layers, ops

WHITE_NORMALISED = 1.0  # 255 after Rescaling(1/127.5, offset=-1)


@keras.saving.register_keras_serializable(package="occface")
class HoleFill(layers.Layer):
    """Pre-fill the hole with a constant and append the mask as an extra channel.

    ``[x, m] -> concat(x * (1 - m) + fill * m, m)``.

    Parameters
    ----------
    fill_value : float
        Value written into the hole, in the units of ``x`` (1.0 = white for images in [-1, 1]).

    Call arguments
    --------------
    inputs : list of two tensors
        ``x`` (N, H, W, C) and ``m`` (N, H, W, 1), 1 = hole.

    Returns
    -------
    (N, H, W, C + 1) float tensor.
    """

    def __init__(self, fill_value=WHITE_NORMALISED, **kwargs):
        super().__init__(**kwargs)
        self.fill_value = float(fill_value)

    def call(self, inputs):
        x, m = inputs
        m = ops.cast(m, x.dtype)
        filled = x * (1.0 - m) + self.fill_value * m
        return ops.concatenate([filled, m], axis=-1)

    def compute_output_shape(self, input_shapes):
        x_shape = tuple(input_shapes[0])
        channels = None if x_shape[-1] is None else x_shape[-1] + 1
        return x_shape[:-1] + (channels,)

    def get_config(self):
        return {**super().get_config(), "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package="occface")
class HoleComposite(layers.Layer):
    """Take only the hole from the generator: ``X̂ = M ⊙ G + (1 − M) ⊙ X`` (paper Eq. 1).

    For a binary mask the known pixels of ``X`` are returned bit-exactly (``0·G + 1·X = X``).

    Call arguments
    --------------
    inputs : list of three tensors
        ``generated`` (N, H, W, C), ``image`` (N, H, W, C), ``mask`` (N, H, W, 1) with 1 = hole.

    Returns
    -------
    (N, H, W, C) float tensor.
    """

    def call(self, inputs):
        generated, image, mask = inputs
        image = ops.cast(image, generated.dtype)
        mask = ops.cast(mask, generated.dtype)
        return mask * generated + (1.0 - mask) * image

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[1])
