"""ArcFace additive angular margin head (Deng et al., CVPR 2019)."""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="occface")
class ArcFace(keras.layers.Layer):
    """Additive angular margin logits: ``s·cos(θ_y + m)`` for the target, ``s·cos θ_j`` otherwise.

    With L2-normalised embedding ``x̂`` and L2-normalised class weight columns ``ŵ_j``,
    ``cos θ_j = x̂ · ŵ_j``. For the target class ``y`` the logit is ``s·φ`` with
    ``φ = cos(θ_y + m) = cos θ_y · cos m − sin θ_y · sin m``.

    **Fallback when θ_y + m > π** (insightface's form). ``cos(θ + m)`` stops decreasing in θ
    once ``θ + m > π``, which would *reward* pushing the embedding further from its class.
    Therefore, when ``cos θ_y <= cos(π − m)`` (i.e. ``θ_y >= π − m``),
    ``φ = cos θ_y − m · sin(π − m)`` (= ``cos θ_y − m·sin m``) instead: a CosFace-like
    penalty that keeps the target logit decreasing in θ over all of ``[0, π]``. (At
    ``θ = π − m`` it steps from ``−1`` down to ``−cos m − m·sin m``, ≈ −1.117 for m = 0.5;
    this is insightface's behaviour, kept for comparability.)
    With ``easy_margin=True`` the margin is applied only where ``cos θ_y > 0``
    (``φ = cos θ_y`` elsewhere).

    The computation is done in float32 whatever the global dtype policy (the layer's own policy
    defaults to ``"float32"``, so inputs are cast to float32 under ``mixed_float16``), and the
    logits are float32.

    Parameters
    ----------
    num_classes : int
        Number of identities.
    margin : float
        Additive angular margin ``m`` in radians, ``0 <= m < π/2``.
    scale : float
        Logit scale ``s > 0``.
    easy_margin : bool
        Use the "easy margin" variant instead of the θ+m>π fallback.
    kernel_initializer : initializer
        Initializer of the class weights.

    Call arguments
    --------------
    inputs : list ``[embeddings, labels]``
        ``embeddings`` ``(N, D)`` float (un-normalised), ``labels`` ``(N,)`` or ``(N, 1)`` int.

    Output shape
    ------------
    ``(N, num_classes)`` float32 logits. Class weights: ``kernel`` of shape ``(D, num_classes)``.

    Examples
    --------
    >>> import numpy as np
    >>> head = ArcFace(num_classes=10, margin=0.5, scale=64.0)
    >>> logits = head([np.random.randn(4, 8).astype("float32"), np.array([0, 1, 2, 3])])
    >>> tuple(logits.shape)
    (4, 10)
    """

    def __init__(self, num_classes, margin=0.5, scale=64.0, easy_margin=False,
                 kernel_initializer="glorot_uniform", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= float(margin) < math.pi / 2:
            raise ValueError(f"margin must be in [0, pi/2), got {margin!r}")
        if not float(scale) > 0.0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.num_classes = int(num_classes)
        self.margin = float(margin)
        self.scale = float(scale)
        self.easy_margin = bool(easy_margin)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError("ArcFace is called on [embeddings, labels]")
        emb_shape = input_shape[0]
        if len(emb_shape) != 2 or emb_shape[-1] is None:
            raise ValueError(f"ArcFace embeddings must be (N, D) with D known, got {emb_shape}")
        self.kernel = self.add_weight(
            name="kernel", shape=(emb_shape[-1], self.num_classes),
            initializer=self.kernel_initializer, dtype="float32")
        self.built = True

    def cosine(self, embeddings):
        """``cos θ`` ``(N, num_classes)`` between normalised embeddings and class weights."""
        x = ops.cast(embeddings, "float32")
        x = x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
        w = ops.cast(self.kernel, "float32")
        w = w / ops.sqrt(ops.maximum(ops.sum(ops.square(w), axis=0, keepdims=True), 1e-12))
        return ops.clip(ops.matmul(x, w), -1.0, 1.0)

    def call(self, inputs):
        embeddings, labels = inputs
        cos = self.cosine(embeddings)
        m = self.margin
        sin = ops.sqrt(ops.clip(1.0 - ops.square(cos), 1e-12, 1.0))
        phi = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            phi = ops.where(cos > 0.0, phi, cos)
        else:
            phi = ops.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        logits = self.scale * (one_hot * phi + (1.0 - one_hot) * cos)
        return ops.cast(logits, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_classes)

    def compute_output_spec(self, inputs):
        embeddings = inputs[0]
        return keras.KerasTensor((embeddings.shape[0], self.num_classes), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, margin=self.margin, scale=self.scale,
                      easy_margin=self.easy_margin,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
