"""How the ID-GAN losses reduce their terms: over a sample's elements, then over the batch.

``reduction`` (reconstruction, structure and instance losses) says how a term is reduced over the
non-batch axes (pixels, feature elements): ``"mean"`` (magnitudes independent of image / feature
size) or ``"sum"`` (per-image sums, the scale the paper's weights balance; see
:mod:`occface.inpainting.losses`). ``reduce`` says whether a loss returns the batch mean or the
per-sample values ``(N,)`` (a ``tf.distribute`` loop divides by the *global* batch size).
"""

from keras import ops

REDUCTIONS = ("mean", "sum")
"""Allowed values of ``reduction``."""


def check_reduction(reduction):
    """Raise ``ValueError`` unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def reduce_elements(values, reduction):
    """Per-sample values: ``values`` ``(N, ...)`` averaged or summed over all non-batch axes.

    Parameters
    ----------
    values : (N, ...) tensor
        Element-wise loss terms (at least 2-D).
    reduction : {"mean", "sum"}

    Returns
    -------
    (N,) tensor
    """
    check_reduction(reduction)
    axes = tuple(range(1, len(values.shape)))
    return ops.mean(values, axis=axes) if reduction == "mean" else ops.sum(values, axis=axes)


def reduce_batch(per_sample, reduce):
    """The batch mean of ``per_sample`` ``(N,)`` if ``reduce``, else ``per_sample`` itself."""
    return ops.mean(per_sample) if reduce else per_sample
