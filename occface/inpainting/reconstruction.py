"""The reconstruction and structure terms of ID-GAN (Ge et al., IEEE TCSVT 2020).

* :func:`discounted_reconstruction_loss` — L1 in the hole, spatially discounted by
  :func:`spatial_discount_weights` (``γ^d`` with ``d`` the :func:`hole_distance` to the nearest
  known pixel), plus L1 outside it;
* :func:`structure_loss` — pixel-wise cross-entropy between the face parser's predictions on the
  completed and the ground-truth face.

Images are float in [0, 255], masks ``(N, H, W, 1)`` with 1 = hole; pixel differences are
measured on the normalised scale ``x / 127.5``. ``reduction`` and ``reduce``: see
:mod:`occface.inpainting.reduction`.
"""

from keras import ops

from occface.inpainting.reduction import check_reduction, reduce_batch, reduce_elements


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
    check_reduction(reduction)
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
    return reduce_batch(hole_weight * hole_term + valid_weight * valid_term, reduce)


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
    if target not in ("hard", "soft"):
        raise ValueError(f"target must be 'hard' or 'soft', got {target!r}")
    check_reduction(reduction)
    logits_fake = ops.cast(parser(generated), "float32")
    logits_true = ops.stop_gradient(ops.cast(parser(truth), "float32"))
    log_probs = ops.log_softmax(logits_fake, axis=-1)
    if target == "hard":
        num_classes = logits_true.shape[-1]
        labels = ops.one_hot(ops.argmax(logits_true, axis=-1), num_classes)
    else:
        labels = ops.softmax(logits_true, axis=-1)
    ce = -ops.sum(labels * log_probs, axis=-1)  # (N, H, W)
    return reduce_batch(reduce_elements(ce, reduction), reduce)

