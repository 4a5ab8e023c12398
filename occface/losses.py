"""Losses of the LCD recognizer: spatial regularization (paper Eq. 1–2) and ArcFace's softmax.

The spatial-regularization terms exist in two normalisations:

* ``reduction="sum"`` — the paper's equations as written (sums over ordered channel pairs);
* ``reduction="mean"`` — divided by the number of ordered pairs ``C(C−1)`` (and, for Eq. 1,
  by the ``kh·kw`` kernel positions), so the term lies in ``[0, 1]`` whatever the width. The
  literal sums are O(C²) (≈ 230,000 at initialisation for an IR-18 at width 16) and, at the
  paper's weights 100 / 1, swamp the ArcFace loss; the recognizer applies the weights to the
  ``"mean"`` form.

Zero-norm vectors (dead filters, all-zero channels) are guarded: their normalised version is
the zero vector, so they contribute 0 and neither value nor gradient is NaN.
"""
import keras
from keras import ops

_REDUCTIONS = ("sum", "mean")
_EPS = 1e-12


def check_reduction(reduction):
    """Raise ``ValueError`` unless ``reduction`` is one of ``"sum"``, ``"mean"``."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _normalize(x, axis):
    """``x / ||x||`` along ``axis``; zero vectors stay zero (finite value and gradient)."""
    sq = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(sq, _EPS))


def filter_orthogonality(kernel, reduction="sum"):
    """Filter orthogonality term, paper Eq. 1.

    For a convolution kernel in Keras layout ``(kh, kw, c_in, c_out)``, filter ``i``'s ``p``-th
    column is ``w_i^p = kernel[ph, pw, :, i]`` (a ``c_in`` vector; ``p`` runs over the
    ``P = kh·kw`` positions). The term is

    ``L_fo = Σ_{i≠j} | Σ_p cos(w_i^p, w_j^p) |``

    over ordered pairs of output filters.

    Parameters
    ----------
    kernel : tensor ``(kh, kw, c_in, c_out)``
        A ``(c_in, c_out)`` dense kernel is treated as ``kh = kw = 1``.
    reduction : {"sum", "mean"}
        ``"sum"``: Eq. 1 as written. ``"mean"``: divided by ``c_out (c_out − 1) · kh · kw``.

    Returns
    -------
    Scalar float32 tensor (0 when ``c_out < 2``).

    Examples
    --------
    >>> import numpy as np
    >>> k = np.zeros((1, 1, 2, 2), "float32"); k[0, 0, :, 0] = [1, 0]; k[0, 0, :, 1] = [1, 1]
    >>> round(float(filter_orthogonality(k)), 4)  # 2 · cos 45°
    1.4142
    """
    check_reduction(reduction)
    w = ops.cast(ops.convert_to_tensor(kernel), "float32")
    if len(w.shape) == 2:
        w = ops.reshape(w, (1, 1) + tuple(w.shape))
    if len(w.shape) != 4:
        raise ValueError(
            f"filter_orthogonality expects a kernel (kh, kw, c_in, c_out), got shape {w.shape}")
    kh, kw, c_in, c_out = w.shape
    if c_out < 2:
        return ops.zeros((), "float32")
    positions = kh * kw
    w = ops.reshape(w, (positions, c_in, c_out))
    w = _normalize(w, axis=1)
    # S_ij = Σ_p cos(w_i^p, w_j^p)
    s = ops.einsum("pki,pkj->ij", w, w)
    off_diagonal = 1.0 - ops.eye(c_out, dtype="float32")
    total = ops.sum(ops.abs(s) * off_diagonal)
    if reduction == "mean":
        total = total / float(c_out * (c_out - 1) * positions)
    return total


def response_decorrelation(features, reduction="sum"):
    """Response decorrelation term, paper Eq. 2, averaged over the batch.

    For one sample's features ``(H, W, C)``, ``f_i`` is channel ``i``'s flattened ``H·W`` map and

    ``L_rd = Σ_{i≠j} cos(f_i, f_j)²``

    over ordered channel pairs; the result is the mean of ``L_rd`` over the batch.

    Parameters
    ----------
    features : tensor ``(N, H, W, C)``
    reduction : {"sum", "mean"}
        ``"sum"``: Eq. 2 as written. ``"mean"``: divided by ``C (C − 1)``.

    Returns
    -------
    Scalar float32 tensor (0 when ``C < 2``).

    Examples
    --------
    >>> import numpy as np
    >>> f = np.zeros((1, 1, 2, 2), "float32"); f[0, 0, :, 0] = [1, 0]; f[0, 0, :, 1] = [1, 1]
    >>> round(float(response_decorrelation(f)), 4)  # 2 · cos² 45°
    1.0
    """
    check_reduction(reduction)
    f = ops.cast(ops.convert_to_tensor(features), "float32")
    if len(f.shape) != 4:
        raise ValueError(
            f"response_decorrelation expects features (N, H, W, C), got shape {f.shape}")
    channels = f.shape[-1]
    if channels is None:
        raise ValueError("response_decorrelation needs a known channel count")
    if channels < 2:
        return ops.zeros((), "float32")
    shape = ops.shape(f)
    f = ops.reshape(f, (shape[0], -1, channels))
    f = _normalize(f, axis=1)
    g = ops.einsum("nki,nkj->nij", f, f)
    off_diagonal = 1.0 - ops.eye(channels, dtype="float32")
    per_sample = ops.sum(ops.square(g) * off_diagonal, axis=(1, 2))
    total = ops.mean(per_sample)
    if reduction == "mean":
        total = total / float(channels * (channels - 1))
    return total


def arcface_loss(labels, logits):
    """Softmax cross-entropy on ArcFace logits, mean over the batch.

    Parameters
    ----------
    labels : int tensor ``(N,)`` (or ``(N, 1)``)
    logits : tensor ``(N, num_classes)``, e.g. from :class:`occface.layers.ArcFace`.

    Returns
    -------
    Scalar float32 tensor ``mean_n −log softmax(logits_n)[labels_n]``.
    """
    logits = ops.cast(logits, "float32")
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))


@keras.saving.register_keras_serializable(package="occface")
class FilterOrthogonalityRegularizer(keras.regularizers.Regularizer):
    """Kernel regularizer ``weight · filter_orthogonality(kernel, reduction)`` (paper Eq. 1).

    Attach it as ``kernel_regularizer`` of a ``Conv2D``; Keras then adds the term to
    ``layer.losses`` / ``model.losses``.

    Parameters
    ----------
    weight : float
        Multiplier (the paper's λ for Eq. 1 is 100).
    reduction : {"sum", "mean"}
        See :func:`filter_orthogonality`; ``"mean"`` by default (see the module docstring).

    Examples
    --------
    >>> import keras
    >>> conv = keras.layers.Conv2D(8, 3, kernel_regularizer=FilterOrthogonalityRegularizer(100.0))
    """

    def __init__(self, weight=100.0, reduction="mean"):
        check_reduction(reduction)
        self.weight = float(weight)
        self.reduction = reduction

    def __call__(self, x):
        return self.weight * filter_orthogonality(x, reduction=self.reduction)

    def get_config(self):
        return {"weight": self.weight, "reduction": self.reduction}
