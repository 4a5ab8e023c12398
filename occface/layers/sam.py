"""Spatial attention module (SAM) of the LCD paper, Eq. 7."""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="occface")
class SAM(keras.layers.Layer):
    """Spatial attention module (He et al., LCD, Eq. 7): per-channel attention from locality.

    ``θ = sigmoid(FC₂(ReLU(FC₁(flatten(conv₁ₓ₁(x))))))`` and the output is ``x · θ`` per channel.

    1. a 1×1 convolution maps the ``C`` channels to ``max(1, C // reduction)`` maps (ReLU);
    2. the result is flattened **keeping the spatial layout** (row-major ``H·W·C'`` vector), so
       the fully connected layer sees *where* each response is — this is what lets SAM notice
       occluded regions;
    3. ``FC₁``: ``max(1, C // reduction)`` units, ReLU;
    4. ``FC₂``: ``C`` units then a sigmoid gives ``θ ∈ (0, 1)^C``;
    5. output ``y[n, h, w, c] = x[n, h, w, c] · θ[n, c]``.

    **Initialisation (near identity).** A plain sigmoid attention starts at θ ≈ 0.5 with random
    per-channel variation; in a deep recognizer trained with ArcFace this was measured to block
    learning (loss stuck, embeddings collapsed). Here ``FC₂`` starts with a **zero kernel** and a
    bias ``logit(initial_attention)``, so at initialisation θ is exactly ``initial_attention``
    (default 0.95) for every channel and sample: the module starts as a near-identity uniform
    scaling and learns deviations from it (the zero kernel receives gradient from the first
    step, the earlier layers from the second).

    Parameters
    ----------
    reduction : int
        Width reduction of the 1×1 convolution and of ``FC₁`` (``max(1, C // reduction)``).
    return_attention : bool
        If true the layer returns ``(x · θ, θ)``.
    initial_attention : float
        θ at initialisation, in ``(0, 1)``.

    Input shape
    -----------
    ``(N, H, W, C)`` with ``H``, ``W`` and ``C`` known when the layer is built.

    Output shape
    ------------
    ``(N, H, W, C)``; with ``return_attention=True`` also θ of shape ``(N, C)``.

    Examples
    --------
    >>> import numpy as np
    >>> sam = SAM(reduction=4, return_attention=True)
    >>> y, theta = sam(np.ones((2, 7, 7, 16), "float32"))
    >>> tuple(y.shape), tuple(theta.shape)
    ((2, 7, 7, 16), (2, 16))
    """

    def __init__(self, reduction=16, return_attention=False, initial_attention=0.95, **kwargs):
        super().__init__(**kwargs)
        if int(reduction) != reduction or reduction < 1:
            raise ValueError(f"reduction must be a positive integer, got {reduction!r}")
        if not 0.0 < float(initial_attention) < 1.0:
            raise ValueError(f"initial_attention must be in (0, 1), got {initial_attention!r}")
        self.reduction = int(reduction)
        self.return_attention = bool(return_attention)
        self.initial_attention = float(initial_attention)

    def build(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(
                "SAM needs inputs (N, H, W, C) with H, W and C known at build time, got shape "
                f"{tuple(input_shape)}")
        _, height, width, channels = input_shape
        hidden = max(1, channels // self.reduction)
        self.conv = keras.layers.Conv2D(hidden, 1, activation="relu", name="conv",
                                        dtype=self.dtype_policy)
        self.conv.build(input_shape)
        self.flatten = keras.layers.Flatten(name="flatten", dtype=self.dtype_policy)
        self.fc1 = keras.layers.Dense(hidden, activation="relu", name="fc1",
                                      dtype=self.dtype_policy)
        self.fc1.build((input_shape[0], height * width * hidden))
        bias = math.log(self.initial_attention / (1.0 - self.initial_attention))
        self.fc2 = keras.layers.Dense(
            channels, name="fc2", kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(bias), dtype=self.dtype_policy)
        self.fc2.build((input_shape[0], hidden))
        self.built = True

    def attention(self, inputs):
        """θ ``(N, C)`` for inputs ``(N, H, W, C)``."""
        z = self.fc1(self.flatten(self.conv(inputs)))
        return ops.sigmoid(self.fc2(z))

    def call(self, inputs):
        theta = self.attention(inputs)
        outputs = inputs * ops.expand_dims(ops.expand_dims(theta, 1), 1)
        if self.return_attention:
            return outputs, theta
        return outputs

    def compute_output_shape(self, input_shape):
        if self.return_attention:
            return tuple(input_shape), (input_shape[0], input_shape[-1])
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction, return_attention=self.return_attention,
                      initial_attention=self.initial_attention)
        return config
