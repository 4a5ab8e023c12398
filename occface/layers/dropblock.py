"""DropBlock baseline (Ghiasi, Lin & Le, NeurIPS 2018)."""
import keras
from keras import ops

from occface.layers.lcd import check_rate


@keras.saving.register_keras_serializable(package="occface")
class DropBlock(keras.layers.Layer):
    """DropBlock: drop contiguous ``block_size × block_size`` regions of the feature map.

    Training-time procedure (Algorithm 1 of Ghiasi et al., 2018), per sample, one mask shared
    by all channels:

    1. ``b = min(block_size, H, W)``; block seeds are drawn only where a whole block fits
       (top-left corners ``i ∈ [0, H−b]``, ``j ∈ [0, W−b]``), each independently with
       probability ``γ = rate · H·W / (b² · (H−b+1)(W−b+1))`` (paper Eq. 1, for non-square maps);
    2. every seed zeroes the ``b × b`` block ``[i, i+b) × [j, j+b)`` (a max-pool of the seeds);
    3. the kept activations are rescaled by ``count(M) / count_ones(M)`` (over the whole batch
       mask, as in the paper's algorithm) so the expected activation is kept.

    At inference (``training=False`` or unset) or with ``rate == 0`` it is the identity.

    Parameters
    ----------
    block_size : int
        Side of the dropped square blocks.
    rate : float
        Target fraction of dropped units, in ``[0, 1)``.
    seed : int, optional
        Seed of the layer's :class:`keras.random.SeedGenerator`.

    Input shape
    -----------
    ``(N, H, W, C)``, with ``H`` and ``W`` known when the layer is built.

    Output shape
    ------------
    Same as the input.

    Examples
    --------
    >>> import numpy as np
    >>> layer = DropBlock(block_size=3, rate=0.1, seed=0)
    >>> tuple(layer(np.ones((2, 8, 8, 4), "float32"), training=True).shape)
    (2, 8, 8, 4)
    """

    def __init__(self, block_size=7, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(block_size) != block_size or block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        self.block_size = int(block_size)
        self.rate = check_rate("rate", rate)
        if self.rate >= 1.0:
            raise ValueError(f"rate must be < 1, got {rate}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"DropBlock needs inputs (N, H, W, C) with known H and W, got {tuple(input_shape)}")
        self.built = True

    def gamma(self, height, width):
        """Seed probability γ for an ``height × width`` map (paper Eq. 1)."""
        b = min(self.block_size, height, width)
        return self.rate * height * width / (b * b * (height - b + 1) * (width - b + 1))

    def block_mask(self, batch_size, height, width):
        """Keep mask ``(batch_size, H, W, 1)``: 0 inside dropped blocks, 1 elsewhere."""
        b = min(self.block_size, height, width)
        gamma = self.gamma(height, width)
        u = keras.random.uniform((batch_size, height - b + 1, width - b + 1, 1),
                                 seed=self.seed_generator)
        seeds = ops.cast(u < gamma, "float32")
        # position p is covered by the seed at corner i iff i <= p <= i + b - 1.
        seeds = ops.pad(seeds, [[0, 0], [b - 1, b - 1], [b - 1, b - 1], [0, 0]])
        dropped = ops.max_pool(seeds, pool_size=b, strides=1, padding="valid")
        return 1.0 - dropped

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        shape = ops.shape(inputs)
        mask = self.block_mask(shape[0], inputs.shape[1], inputs.shape[2])
        total = ops.cast(ops.size(mask), "float32")
        kept = ops.maximum(ops.sum(mask), 1.0)
        mask = ops.stop_gradient(mask * (total / kept))
        return inputs * ops.cast(mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(block_size=self.block_size, rate=self.rate, seed=self.seed)
        return config
