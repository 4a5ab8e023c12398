"""The WGAN-GP adversarial terms of ID-GAN (Gulrajani et al. 2017; Ge et al., IEEE TCSVT 2020).

The critics (global and local) minimise :func:`critic_wasserstein_loss` plus
:func:`gradient_penalty`; the generator's adversarial term is :func:`generator_adversarial_loss`
(one per critic, each weighted 300 in :func:`occface.inpainting.losses.generator_objective`).
Scores are ``(N, 1)`` or ``(N,)``; every loss returns the batch mean, or with ``reduce=False`` the
per-sample values ``(N,)``.
"""

import keras
from keras import ops

from occface.inpainting.reduction import reduce_batch


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
    return reduce_batch(fake_scores - real_scores, reduce)


def generator_adversarial_loss(fake_scores, reduce=True):
    """WGAN generator loss ``−D(G(x))`` (paper: one term per critic, each weighted 300).

    Parameters
    ----------
    fake_scores : (N, 1) or (N,) tensor

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``.
    """
    return reduce_batch(-ops.reshape(ops.cast(fake_scores, "float32"), (-1,)), reduce)

