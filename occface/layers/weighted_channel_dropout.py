"""Weighted Channel Dropout baseline (Hou & Wang, AAAI 2019)."""
import keras
from keras import ops

from occface.layers.lcd import check_rate


@keras.saving.register_keras_serializable(package="occface")
class WeightedChannelDropout(keras.layers.Layer):
    """Weighted Channel Dropout (WCD; Hou & Wang, AAAI 2019): drop weakly activated channels.

    Training-time procedure, per sample (paper Sec. "Weighted Channel Dropout": two steps,
    *Rating Channels* and *Selecting Channels*; three modules GAP, WRS, RNG):

    1. **Rating channels (GAP).** ``score_c = mean_{h,w} |x[h, w, c]|``. The paper uses the
       global average of post-ReLU activations; the absolute value makes the score the
       activation *magnitude* also when the input is not rectified (e.g. after a BN), and
       equals the paper's score for non-negative inputs.
    2. **Weighted random selection (WRS).** Draw ``r_c ~ U(0, 1)`` and the key
       ``k_c = r_c^(1/score_c)``; keep the ``M = max(1, round(wrs_ratio · C))`` channels with
       the largest keys. This draws ``M`` channels without replacement with probabilities
       proportional to the scores (Efraimidis & Spirakis), so weakly activated channels are
       the likely ones to be dropped. Keys are compared in log space, ``log(r_c) / score_c``
       (same order), with the score floored at 1e-12 so all-zero channels rank last.
    3. **Random number generator (RNG).** Each channel selected by WRS is further kept with
       probability ``q`` (Bernoulli), adding plain randomness for high layers whose scores are
       very uneven. ``q = 1`` disables this step.
    4. **Rescaling.** Kept channels are multiplied by
       ``α = Σ_c score_c / Σ_{c ∈ WRS} score_c`` (computed from the WRS selection), the
       dropped ones by 0. ``α`` and the mask are constants for the gradient.

    At inference (``training=False`` or unset) the layer is the identity.

    Parameters
    ----------
    wrs_ratio : float
        Fraction of channels kept by the weighted random selection, in ``(0, 1]``.
    q : float
        Keep probability of the RNG step, in ``[0, 1]``.
    rescale : bool
        Apply the ``α`` rescaling of step 4.
    seed : int, optional
        Seed of the layer's :class:`keras.random.SeedGenerator`.

    Input shape
    -----------
    ``(N, H, W, C)``.

    Output shape
    ------------
    Same as the input.

    Examples
    --------
    >>> import numpy as np
    >>> layer = WeightedChannelDropout(wrs_ratio=0.5, q=1.0, rescale=False, seed=0)
    >>> y = layer(np.ones((1, 4, 4, 8), "float32"), training=True)
    >>> int((np.asarray(y)[0].sum(axis=(0, 1)) == 0).sum())
    4
    """

    def __init__(self, wrs_ratio=0.9, q=0.9, rescale=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.wrs_ratio = check_rate("wrs_ratio", wrs_ratio)
        if self.wrs_ratio == 0.0:
            raise ValueError("wrs_ratio must be > 0")
        self.q = check_rate("q", q)
        self.rescale = bool(rescale)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "WeightedChannelDropout needs inputs (N, H, W, C) with known C, got "
                f"{tuple(input_shape)}")
        self.built = True

    def num_selected(self, channels):
        """``M``, the number of channels the WRS step keeps."""
        return max(1, int(round(self.wrs_ratio * channels)))

    def channel_mask(self, inputs):
        """Keep mask ``(N, C)``, already multiplied by ``α`` when ``rescale``."""
        x = ops.cast(inputs, "float32")
        channels = inputs.shape[-1]
        score = ops.mean(ops.abs(x), axis=(1, 2))                             # (N, C)
        r = keras.random.uniform(ops.shape(score), minval=1e-12, maxval=1.0,
                                 seed=self.seed_generator)
        log_key = ops.log(r) / ops.maximum(score, 1e-12)                        # order of r^(1/s)
        # rank 0 = largest key.
        rank = ops.argsort(ops.argsort(-log_key, axis=-1), axis=-1)
        selected = ops.cast(rank < self.num_selected(channels), "float32")
        mask = selected
        if self.q < 1.0:
            rng = keras.random.uniform(ops.shape(score), seed=self.seed_generator)
            mask = mask * ops.cast(rng < self.q, "float32")
        if self.rescale:
            total = ops.sum(score, axis=-1, keepdims=True)
            kept = ops.sum(score * selected, axis=-1, keepdims=True)
            alpha = ops.where(kept > 0.0, total / ops.maximum(kept, 1e-12), 1.0)
            mask = mask * alpha
        return ops.stop_gradient(mask)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        mask = self.channel_mask(inputs)
        mask = ops.expand_dims(ops.expand_dims(mask, 1), 1)
        return inputs * ops.cast(mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(wrs_ratio=self.wrs_ratio, q=self.q, rescale=self.rescale, seed=self.seed)
        return config
