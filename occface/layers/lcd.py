"""Locality-aware Channel-wise Dropout (LCD), the channel-dropout part (paper Eq. 3–4)."""
import keras
from keras import ops


def check_rate(name, value):
    """``float(value)`` when it is a number in [0, 1]; ``ValueError`` naming ``name`` otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


@keras.saving.register_keras_serializable(package="occface")
class LCD(keras.layers.Layer):
    """Channel-wise dropout of the LCD paper (He et al., IEEE TIP), Eq. 3–4.

    In training, for **each sample independently**:

    1. draw a drop ratio ``γ ~ U[min_rate, max_rate]`` (Eq. 3);
    2. set ``k = round(γ · C)`` (round half to even);
    3. choose ``k`` **distinct** channels uniformly at random (the ``k`` smallest of ``C``
       i.i.d. uniform scores) and multiply them by 0 at every one of the ``H × W`` positions;
       the other channels are passed unchanged — no ``1/(1-γ)`` rescaling, the paper multiplies
       by the 0/1 channel mask only (Eq. 4).

    At inference (``training=False`` or unset) the layer is the identity. Gradients flow only
    through the kept channels (the mask is a constant).

    Under ``tf.distribute.MirroredStrategy`` the layer's seed state is replicated, so replica
    ``r``'s ``n``-th sample gets the same mask as replica ``r'``'s ``n``-th sample (as for Keras'
    own ``Dropout``); each sample's mask still has the distribution above.

    Parameters
    ----------
    min_rate, max_rate : float
        Bounds of the per-sample drop ratio, ``0 <= min_rate <= max_rate <= 1``.
    seed : int, optional
        Seed of the layer's :class:`keras.random.SeedGenerator`.

    Input shape
    -----------
    ``(N, H, W, C)`` (any rank ≥ 2 works; the last axis is the channel axis).

    Output shape
    ------------
    Same as the input.

    Raises
    ------
    ValueError
        If a rate is outside ``[0, 1]`` or ``min_rate > max_rate``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = LCD(min_rate=0.5, max_rate=0.5, seed=1)
    >>> y = layer(np.ones((2, 4, 4, 8), "float32"), training=True)
    >>> [int((np.asarray(y)[i].sum(axis=(0, 1)) == 0).sum()) for i in range(2)]
    [4, 4]
    """

    def __init__(self, min_rate=0.0, max_rate=0.6, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.min_rate = check_rate("min_rate", min_rate)
        self.max_rate = check_rate("max_rate", max_rate)
        if self.min_rate > self.max_rate:
            raise ValueError(
                f"min_rate must be <= max_rate, got min_rate={min_rate}, max_rate={max_rate}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"LCD needs inputs with a known channel axis, got shape {tuple(input_shape)}")
        self.built = True

    def channel_mask(self, batch_size, channels, dtype="float32"):
        """Draw the training-time keep mask.

        Returns
        -------
        Tensor ``(batch_size, channels)`` of 0/1 values, row ``n`` with exactly
        ``round(γ_n · channels)`` zeros.
        """
        gamma = keras.random.uniform(
            (batch_size, 1), minval=self.min_rate, maxval=self.max_rate,
            seed=self.seed_generator)
        num_drop = ops.round(gamma * channels)
        scores = keras.random.uniform((batch_size, channels), seed=self.seed_generator)
        # rank of each channel's score within its sample: a uniformly random permutation.
        rank = ops.argsort(ops.argsort(scores, axis=-1), axis=-1)
        keep = ops.cast(rank, "float32") >= num_drop
        return ops.cast(keep, dtype)

    def call(self, inputs, training=None):
        if not training or self.max_rate == 0.0:
            return inputs
        shape = ops.shape(inputs)
        mask = self.channel_mask(shape[0], shape[-1], dtype=inputs.dtype)
        mask = ops.reshape(mask, (shape[0],) + (1,) * (len(inputs.shape) - 2) + (shape[-1],))
        return inputs * ops.stop_gradient(mask)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(min_rate=self.min_rate, max_rate=self.max_rate, seed=self.seed)
        return config
