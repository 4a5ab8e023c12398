"""ID-GAN losses (Ge et al., IEEE TCSVT 2020).

Every loss takes tensors in the package's conventions (images float in [0, 255], masks
(N, H, W, 1) with 1 = hole) and returns the batch mean, or with ``reduce=False`` the per-sample
values (N,) so that a ``tf.distribute`` loop can divide by the *global* batch size.

Overall generator objective (paper Eq. 6, :func:`generator_objective`; weights as trainer
flags)::

    L_G = L_rec + λ_adv,g · L_adv(global) + λ_adv,l · L_adv(local) + λ_S · L_S
          + λ_R · (L_inst + L_div)

and the critics' objective, per critic (global and local), :func:`critic_wasserstein_loss` plus
:func:`gradient_penalty`.

Pixel differences are measured on the normalised scale ``x / 127.5`` (i.e. [-1, 1] images), so the
reconstruction loss has the usual magnitude independent of the [0, 255] input convention.

``reduction`` (reconstruction, structure and instance losses) says how the terms are reduced over
the non-batch axes (pixels, feature elements): ``"mean"`` (default; magnitudes independent of
image/feature size) or ``"sum"`` (per-image sums). The paper's weights (adversarial 300 each,
λ_S = 0.05, λ_R = 2e-4, inherited from Generative Face Completion, Li et al. 2017) only balance
with per-image sums — a mean L1 of ~0.1 next to 300·(WGAN score) would vanish — so the ID-GAN
trainer uses ``"sum"`` with the paper's weights.
"""

import keras
from keras import ops


def _reduce(per_sample, reduce):
    return ops.mean(per_sample) if reduce else per_sample


def _check_reduction(reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _as_4d(mask):
    mask = ops.convert_to_tensor(mask)
    rank = len(mask.shape)
    if rank == 4:
        return mask, rank
    if rank == 3:
        return mask[..., None], rank
    if rank == 2:
        return mask[None, :, :, None], rank
    raise ValueError(f"mask must be (H, W), (N, H, W) or (N, H, W, 1), got shape {mask.shape}")


def _from_4d(x, rank):
    if rank == 4:
        return x
    if rank == 3:
        return x[..., 0]
    return x[0, :, :, 0]


def hole_distance(mask, max_distance=None):
    """Chessboard distance from each hole pixel to the nearest known pixel.

    ``d(p) = min_{q known} max(|p_y − q_y|, |p_x − q_x|)`` for hole pixels, 0 for known pixels.
    Only pixels inside the image count as known (a hole touching the border is not "known"
    beyond it). Computed by repeated 3×3 erosion of the hole: ``p`` survives ``k`` erosions
    exactly when ``d(p) > k``, so ``d = Σ_k [p ∈ erode^k(hole)]``.

    Parameters
    ----------
    mask : (N, H, W, 1), (N, H, W) or (H, W) tensor
        1 (> 0.5) = hole.
    max_distance : int, optional
        Cap on ``d`` (default ``max(H, W)``; an all-hole mask, which has no known pixel, gets the
        cap everywhere).

    Returns
    -------
    float32 tensor shaped like ``mask``.
    """
    mask4, rank = _as_4d(mask)
    hole = ops.cast(ops.cast(mask4, "float32") > 0.5, "float32")
    height, width = hole.shape[1], hole.shape[2]
    cap = int(max_distance) if max_distance is not None else int(max(height, width))

    def cond(k, current, total):
        return ops.logical_and(k < cap, ops.max(current) > 0.0)

    def body(k, current, total):
        total = total + current
        eroded = -ops.max_pool(-current, pool_size=3, strides=1, padding="same")
        return k + 1, eroded, total

    _, _, distance = ops.while_loop(
        cond, body, (ops.convert_to_tensor(0, "int32"), hole, ops.zeros_like(hole)))
    return _from_4d(distance, rank)


def spatial_discount_weights(mask, gamma=0.99, max_distance=None):
    """Spatially discounted weights ``γ^d`` inside the hole (ID-GAN/DeepFill reconstruction).

    Pixels deep inside a large hole have many plausible completions, so their L1 weight decays
    with the distance ``d`` to the nearest known pixel. The metric is the chessboard distance
    (see :func:`hole_distance`): hole pixels adjacent (also diagonally) to a known pixel have
    ``d = 1``, weight ``γ``.

    Parameters
    ----------
    mask : (N, H, W, 1), (N, H, W) or (H, W) tensor
        1 = hole.
    gamma : float
        Discount per pixel of distance (paper: 0.99).
    max_distance : int, optional
        See :func:`hole_distance`.

    Returns
    -------
    float32 tensor shaped like ``mask``: ``γ^d`` in the hole, 0 at known pixels.
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    distance = hole_distance(mask, max_distance=max_distance)
    hole = ops.cast(ops.cast(mask, "float32") > 0.5, "float32")
    return ops.power(ops.convert_to_tensor(float(gamma), "float32"), distance) * hole


def discounted_reconstruction_loss(generated, truth, mask, gamma=0.99, hole_weight=1.0,
                                   valid_weight=1.0, discount=None, reduction="mean", reduce=True):
    """Reconstruction loss: spatially discounted L1 in the hole plus L1 outside it.

    Per sample, with ``D = |G − Y| / 127.5`` (normalised units), ``W = γ^d`` in the hole::

        "mean":  L_rec = hole_weight · Σ W·D / (3·|hole|) + valid_weight · Σ (1−M)·D / (3·|known|)
        "sum":   L_rec = hole_weight · Σ W·D + valid_weight · Σ (1−M)·D

    Parameters
    ----------
    generated : (N, H, W, 3) float tensor in [0, 255]
        Raw generator output G(X, M) (not the composite: its L1 outside the hole is 0).
    truth : (N, H, W, 3) float tensor in [0, 255]
        Ground truth Y.
    mask : (N, H, W, 1) float tensor, 1 = hole.
    gamma : float
        Discount of :func:`spatial_discount_weights`.
    hole_weight, valid_weight : float
        Weights of the two terms.
    discount : (N, H, W, 1) tensor, optional
        Precomputed :func:`spatial_discount_weights` (e.g. from the data pipeline).
    reduction : {"mean", "sum"}
        Normalise each term by its area (default) or sum over pixels.
    reduce : bool
        Mean over the batch (default) or per-sample values (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    _check_reduction(reduction)
    generated = ops.cast(generated, "float32")
    truth = ops.cast(truth, "float32")
    mask = ops.cast(ops.cast(mask, "float32") > 0.5, "float32")
    if discount is None:
        discount = spatial_discount_weights(mask, gamma)
    diff = ops.abs(generated - truth) / 127.5
    channels = float(generated.shape[-1])
    hole_term = ops.sum(ops.cast(discount, "float32") * diff, axis=(1, 2, 3))
    valid_term = ops.sum((1.0 - mask) * diff, axis=(1, 2, 3))
    if reduction == "mean":
        hole_term = hole_term / ops.maximum(ops.sum(mask, axis=(1, 2, 3)) * channels, 1.0)
        valid_term = valid_term / ops.maximum(ops.sum(1.0 - mask, axis=(1, 2, 3)) * channels, 1.0)
    return _reduce(hole_weight * hole_term + valid_weight * valid_term, reduce)


def gradient_penalty(critic, real, fake, weight=10.0, epsilon=None, input_scale=1.0, seed=None,
                     reduce=True):
    """WGAN-GP gradient penalty (Gulrajani et al. 2017, Eq. 3; ID-GAN critic objective).

    ``x̃ = ε·real + (1 − ε)·fake`` with one ``ε ~ U[0, 1]`` per sample, and
    ``GP = λ · (‖∇_x̃ D(x̃)‖₂ · s − 1)²`` where the norm runs over all non-batch axes and ``s =
    input_scale`` converts the gradient to the units the critic works in: critics built here take
    [0, 255] images and normalise by 1/127.5 internally, so pass ``input_scale=127.5`` to enforce
    the 1-Lipschitz constraint on the normalised [-1, 1] image (``∇_{x/s} D = s·∇_x D``).

    Uses ``tf.GradientTape`` (the TensorFlow training step is the only caller); call it inside the
    critic's outer tape so the penalty is differentiable with respect to the critic weights.

    Parameters
    ----------
    critic : callable
        Maps (N, ...) inputs to (N, 1) or (N,) scores; samples must be independent (no batch norm).
    real, fake : (N, ...) float tensors
        Real and generated samples.
    weight : float
        λ (10 in WGAN-GP).
    epsilon : (N,) or broadcastable (N, 1, ..., 1) tensor, optional
        Fixed interpolation coefficients (for tests / deterministic resume); drawn uniformly if
        omitted.
    input_scale : float
        ``s`` above.
    seed : int or keras.random.SeedGenerator, optional
        Seed for drawing ``epsilon``.
    reduce : bool
        Mean over the batch (default) or per-sample penalties (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    import tensorflow as tf

    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    rank = real.shape.rank
    batch = tf.shape(real)[0]
    eps_shape = tf.concat([[batch], tf.ones([rank - 1], tf.int32)], axis=0)
    if epsilon is None:
        epsilon = keras.random.uniform(eps_shape, seed=seed)
    epsilon = tf.reshape(tf.cast(epsilon, tf.float32), eps_shape)
    mixed = epsilon * real + (1.0 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = critic(mixed)
        total = tf.reduce_sum(scores)
    grads = tape.gradient(total, mixed)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=tf.range(1, rank)) + 1e-12)
    per_sample = weight * tf.square(norms * input_scale - 1.0)
    return tf.reduce_mean(per_sample) if reduce else per_sample


def critic_wasserstein_loss(real_scores, fake_scores, reduce=True):
    """WGAN critic loss ``D(fake) − D(real)`` (minimised by the critic), per sample.

    Parameters
    ----------
    real_scores, fake_scores : (N, 1) or (N,) tensors

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    real_scores = ops.reshape(ops.cast(real_scores, "float32"), (-1,))
    fake_scores = ops.reshape(ops.cast(fake_scores, "float32"), (-1,))
    return _reduce(fake_scores - real_scores, reduce)


def generator_adversarial_loss(fake_scores, reduce=True):
    """WGAN generator loss ``−D(G(x))`` (paper: one term per critic, each weighted 300).

    Parameters
    ----------
    fake_scores : (N, 1) or (N,) tensor

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    return _reduce(-ops.reshape(ops.cast(fake_scores, "float32"), (-1,)), reduce)


def generator_objective(reconstruction, adv_global, adv_local, structure, instance, diversity,
                        *, adv_global_weight=300.0, adv_local_weight=300.0,
                        structure_weight=0.05, identity_weight=2e-4, reduce=True):
    """Total generator objective of ID-GAN (paper Eq. 6): the weighted sum of all the terms.

    ``L_G = L_rec + λ_adv,g · L_adv,g + λ_adv,l · L_adv,l + λ_S · L_S + λ_R · (L_inst + L_div)``

    The reconstruction term has weight 1 (its hole / valid weights are inside
    :func:`discounted_reconstruction_loss`); one weight λ_R covers both identity terms. The paper's
    weights (the defaults) balance per-image *sums* over pixels / feature elements
    (``reduction="sum"`` of the terms). A term that is off (warm-up, no parser, no recognizer)
    is passed as zeros.

    Parameters
    ----------
    reconstruction : (N,) tensor
        L_rec, :func:`discounted_reconstruction_loss` with ``reduce=False``.
    adv_global, adv_local : (N,) tensors
        L_adv of the global and the local critic, :func:`generator_adversarial_loss`.
    structure : (N,) tensor
        L_S, :func:`structure_loss`.
    instance : (N,) tensor
        L_inst, :func:`instance_loss` (Eq. 4).
    diversity : (N,) tensor
        L_div, :func:`identity_diversity_loss` (Eq. 5).
    adv_global_weight, adv_local_weight : float
        λ_adv,g and λ_adv,l (paper: 300 each).
    structure_weight : float
        λ_S (paper: 0.05).
    identity_weight : float
        λ_R (paper: 2e-4).
    reduce : bool
        Mean over the batch (default) or per-sample values (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``. (Scalar terms, e.g. batch means, give the scalar
    objective of those means either way: the objective is linear.)
    """
    rec, adv_g, adv_l, struct, inst, div = (
        ops.cast(t, "float32") for t in (reconstruction, adv_global, adv_local, structure,
                                         instance, diversity))
    per_sample = (rec + adv_global_weight * adv_g + adv_local_weight * adv_l
                  + structure_weight * struct + identity_weight * (inst + div))
    return _reduce(per_sample, reduce)


def structure_loss(parser, generated, truth, target="hard", reduction="mean", reduce=True):
    """Structure loss: pixel-wise softmax cross-entropy between S(X̂) and S(Y) (λ_S = 0.05).

    The parsing network S is frozen here: its prediction on the ground truth is the (constant)
    target, its prediction on the generated face is pushed towards it; gradients reach the
    generator through ``generated`` only.

    Parameters
    ----------
    parser : callable
        (N, H, W, 3) images in [0, 255] -> (N, H, W, K) logits, e.g. :func:`build_face_parser`.
    generated : (N, H, W, 3) float tensor in [0, 255]
        Completed face X̂.
    truth : (N, H, W, 3) float tensor in [0, 255]
        Ground truth Y.
    target : {"hard", "soft"}
        ``argmax`` labels of S(Y) (the paper's pixel-wise softmax loss) or its probabilities.
    reduction : {"mean", "sum"}
        Mean (default) or sum of the cross-entropy over pixels.
    reduce : bool
        Mean over the batch (default) or per-sample values (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    _check_reduction(reduction)
    if target not in ("hard", "soft"):
        raise ValueError(f"target must be 'hard' or 'soft', got {target!r}")
    logits_fake = ops.cast(parser(generated), "float32")
    logits_true = ops.stop_gradient(ops.cast(parser(truth), "float32"))
    log_probs = ops.log_softmax(logits_fake, axis=-1)
    if target == "hard":
        num_classes = logits_true.shape[-1]
        labels = ops.one_hot(ops.argmax(logits_true, axis=-1), num_classes)
    else:
        labels = ops.softmax(logits_true, axis=-1)
    ce = -ops.sum(labels * log_probs, axis=-1)  # (N, H, W)
    per_sample = ops.mean(ce, axis=(1, 2)) if reduction == "mean" else ops.sum(ce, axis=(1, 2))
    return _reduce(per_sample, reduce)


def _squared_distance(a, b, reduction):
    a = ops.cast(a, "float32")
    b = ops.cast(b, "float32")
    diff = ops.square(a - b)
    axes = tuple(range(1, len(diff.shape)))
    return ops.mean(diff, axis=axes) if reduction == "mean" else ops.sum(diff, axis=axes)


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
    _check_reduction(reduction)
    per_sample = alpha_high * _squared_distance(high_fake, ops.stop_gradient(high_real),
                                                reduction)
    if (low_fake is None) != (low_real is None):
        raise ValueError("low_fake and low_real must both be tensors or both be None")
    if low_fake is not None:
        per_sample = per_sample + alpha_low * _squared_distance(
            low_fake, ops.stop_gradient(low_real), reduction)
    return _reduce(per_sample, reduce)


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
    return _reduce(beta * ops.relu(d_fake - d_real), reduce)
