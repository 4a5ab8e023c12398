"""The identity terms of ID-GAN (Ge et al., IEEE TCSVT 2020), on the frozen recognizer R.

* :func:`instance_loss` (Eq. 4) — feature matching of the completed and the ground-truth face at
  R's low and high layers;
* :func:`identity_diversity_loss` (Eq. 5) — the completed face must be at least as close to its
  identity centroid (:func:`occface.inpainting.identity_centroids`) as the real face.

Both are weighted together by λ_R in :func:`occface.inpainting.losses.generator_objective`.
``reduction`` and ``reduce``: see :mod:`occface.inpainting.reduction`.
"""

from keras import ops

from occface.inpainting.reduction import check_reduction, reduce_batch, reduce_elements


def _squared_distance(a, b, reduction):
    return reduce_elements(ops.square(ops.cast(a, "float32") - ops.cast(b, "float32")), reduction)


def instance_loss(low_fake, low_real, high_fake, high_real, alpha_low=0.5, alpha_high=0.05,
                  reduction="mean", reduce=True):
    """Instance (feature-matching) loss of the frozen recognizer R (paper Eq. 4).

    ``L_inst = α_l · ‖R_l(X̂) − R_l(Y)‖² + α_h · ‖R_h(X̂) − R_h(Y)‖²`` — squared Euclidean
    distances, averaged over the feature elements (``reduction="mean"``, weights independent of
    the feature sizes) or summed (``"sum"``, the plain squared norms).

    Parameters
    ----------
    low_fake, low_real : (N, h, w, c) tensors or None
        Low-layer features of the inpainted and ground-truth faces; ``None`` (recognizers that only
        expose an embedding) drops the low term.
    high_fake, high_real : (N, D) tensors
        High-layer features (embeddings).
    alpha_low, alpha_high : float
        α_l = 0.5, α_h = 0.05 in the paper.
    reduction : {"mean", "sum"}
        Over the feature elements.
    reduce : bool
        Mean over the batch (default) or per-sample values (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    if (low_fake is None) != (low_real is None):
        raise ValueError("low_fake and low_real must both be tensors or both be None")
    check_reduction(reduction)
    per_sample = alpha_high * _squared_distance(high_fake, ops.stop_gradient(high_real),
                                                reduction)
    if low_fake is not None:
        per_sample = per_sample + alpha_low * _squared_distance(
            low_fake, ops.stop_gradient(low_real), reduction)
    return reduce_batch(per_sample, reduce)


def identity_diversity_loss(inpainted_features, truth_features, centroids, beta=0.5, labels=None,
                            reduce=True):
    """Identity-diversity loss (paper Eq. 5).

    ``L_div = β · [‖R_h(X̂) − f_id‖₂ − ‖R_h(Y) − f_id‖₂]₊`` per sample, mean over the batch: the
    inpainted face must be at least as close to its identity centroid ``f_id`` as the real face.

    Parameters
    ----------
    inpainted_features : (N, D) tensor
        R_h(X̂), high-level features of the inpainted faces.
    truth_features : (N, D) tensor
        R_h(Y) of the ground-truth faces (treated as constants).
    centroids : (N, D) tensor, or (C, D) with ``labels``
        The sample's own centroid row ``f_id`` (already gathered); or the whole table of
        :func:`occface.inpainting.identity_centroids` when ``labels`` (N,) int is given.
    beta : float
        β = 0.5 in the paper.
    labels : (N,) int tensor, optional
        Identity of each sample, to gather the rows of a full centroid table.
    reduce : bool
        Mean over the batch (default) or per-sample values (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    fake = ops.cast(inpainted_features, "float32")
    real = ops.stop_gradient(ops.cast(truth_features, "float32"))
    centroids = ops.cast(centroids, "float32")
    if labels is not None:
        centroids = ops.take(centroids, ops.cast(labels, "int32"), axis=0)
    centroids = ops.stop_gradient(centroids)
    d_fake = ops.sqrt(ops.sum(ops.square(fake - centroids), axis=-1) + 1e-12)
    d_real = ops.sqrt(ops.sum(ops.square(real - centroids), axis=-1) + 1e-12)
    return reduce_batch(beta * ops.relu(d_fake - d_real), reduce)
