"""Losses against hand-computed values and numpy references."""
import numpy as np
import pytest

import keras
import tensorflow as tf

from occface.inpainting import (build_local_critic, critic_wasserstein_loss,
                                discounted_reconstruction_loss, generator_adversarial_loss,
                                generator_objective, gradient_penalty, hole_distance,
                                identity_diversity_loss, instance_loss, spatial_discount_weights,
                                structure_loss)


def np_(t):
    return keras.ops.convert_to_numpy(t)


# --- spatial discount -----------------------------------------------------------------------

def brute_force_chessboard(hole, cap):
    """d(p) = min over known q of max(|dy|, |dx|) for hole pixels, by exhaustive search."""
    h, w = hole.shape
    known = np.argwhere(~hole)
    out = np.zeros((h, w))
    for y, x in np.argwhere(hole):
        if len(known):
            out[y, x] = min(np.max(np.abs(known - [y, x]), axis=1).min(), cap)
        else:
            out[y, x] = cap
    return out


def _random_masks(rng):
    masks = np.zeros((6, 17, 20), bool)
    masks[0, 3:12, 4:16] = True                        # rectangle
    masks[1, 0:9, 0:20] = True                         # touches three borders
    masks[2] = rng.random((17, 20)) < 0.6              # random blobs
    masks[3, 5:6, 5:6] = True                          # one pixel
    masks[4] = True                                    # no known pixel at all
    yy, xx = np.mgrid[:17, :20]
    masks[5] = (yy - 8) ** 2 + (xx - 9) ** 2 < 40      # disc (non-rectangular)
    return masks


def test_hole_distance_matches_brute_force(rng):
    masks = _random_masks(rng)
    got = np_(hole_distance(masks.astype("float32")[..., None]))[..., 0]
    for mask, d in zip(masks, got):
        np.testing.assert_array_equal(d, brute_force_chessboard(mask, cap=20))


def test_spatial_discount_weights(rng):
    masks = _random_masks(rng)
    weights = np_(spatial_discount_weights(masks.astype("float32"), gamma=0.9))
    assert weights.shape == masks.shape
    for mask, w in zip(masks, weights):
        expected = np.where(mask, 0.9 ** brute_force_chessboard(mask, cap=20), 0.0)
        np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-7)
    # hand case: the hole pixels next to a known pixel get gamma, the 2x2 core gamma^2
    m = np.zeros((6, 6), "float32")
    m[1:5, 1:5] = 1
    w = np_(spatial_discount_weights(m, gamma=0.5))
    assert w[1, 1] == 0.5 and w[2, 2] == 0.25 and w[0, 0] == 0.0


def test_discount_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        spatial_discount_weights(np.zeros((4, 4)), gamma=1.5)


def test_discounted_reconstruction_loss_reference(rng):
    gen = rng.uniform(0, 255, (2, 8, 9, 3)).astype("float32")
    truth = rng.uniform(0, 255, (2, 8, 9, 3)).astype("float32")
    mask = np.zeros((2, 8, 9, 1), "float32")
    mask[0, 2:6, 3:8] = 1
    mask[1, 0:3, 0:4] = 1
    got = np_(discounted_reconstruction_loss(gen, truth, mask, gamma=0.9, hole_weight=1.0,
                                             valid_weight=0.5, reduce=False))
    for i in range(2):
        hole = mask[i, ..., 0] > 0
        w = np.where(hole, 0.9 ** brute_force_chessboard(hole, cap=9), 0.0)
        diff = np.abs(gen[i] - truth[i]) / 127.5
        hole_term = (w[..., None] * diff).sum() / (3 * hole.sum())
        valid_term = diff[~hole].sum() / (3 * (~hole).sum())
        np.testing.assert_allclose(got[i], hole_term + 0.5 * valid_term, rtol=1e-5)
    assert np.isclose(np_(discounted_reconstruction_loss(gen, truth, mask, gamma=0.9,
                                                         valid_weight=0.5)), got.mean(), rtol=1e-6)
    assert np_(discounted_reconstruction_loss(truth, truth, mask)) == 0.0
    summed = np_(discounted_reconstruction_loss(gen, truth, mask, gamma=0.9, valid_weight=0.5,
                                                reduction="sum", reduce=False))
    for i in range(2):
        hole = mask[i, ..., 0] > 0
        w = np.where(hole, 0.9 ** brute_force_chessboard(hole, cap=9), 0.0)
        diff = np.abs(gen[i] - truth[i]) / 127.5
        np.testing.assert_allclose(summed[i], (w[..., None] * diff).sum() + 0.5 * diff[~hole].sum(),
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        discounted_reconstruction_loss(gen, truth, mask, reduction="max")


# --- WGAN-GP ------------------------------------------------------------------------------------

class LinearCritic:
    def __init__(self, w):
        self.w = tf.constant(w, tf.float32)

    def __call__(self, x):
        return tf.reduce_sum(x * self.w, axis=-1, keepdims=True)


def quadratic_critic(x):
    return 0.5 * tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)


def test_gradient_penalty_linear_critic_by_hand():
    # D(x) = w.x has gradient w everywhere: ||w|| = 3 -> 10 * (3 - 1)^2 = 40 for every epsilon.
    critic = LinearCritic([1.0, 2.0, 2.0])
    real = np.array([[1, 2, 3], [4, 5, 6]], "float32")
    fake = np.zeros_like(real)
    assert np.isclose(np_(gradient_penalty(critic, real, fake, weight=10.0)), 40.0)
    # in units of x / 3 the gradient norm is 9: 10 * (9 - 1)^2 = 640
    assert np.isclose(np_(gradient_penalty(critic, real, fake, input_scale=3.0)), 640.0)
    # a 1-Lipschitz linear critic gets no penalty
    assert np.isclose(np_(gradient_penalty(LinearCritic([0.6, 0.8, 0.0]), real, fake)), 0.0,
                      atol=1e-6)


def test_gradient_penalty_fixed_epsilon_by_hand():
    # D(x) = |x|^2 / 2 has gradient x, so the penalty depends on the interpolate.
    real = np.array([[3.0, 4.0], [1.0, 0.0]], "float32")
    fake = np.array([[0.0, 0.0], [0.0, 1.0]], "float32")
    eps = np.array([0.5, 0.25], "float32")
    # sample 0: x~ = (1.5, 2) -> |x~| = 2.5 -> 10 * 1.5^2 = 22.5
    # sample 1: x~ = (0.25, 0.75) -> |x~| = sqrt(0.625) -> 10 * (sqrt(0.625) - 1)^2
    expected = np.array([22.5, 10 * (np.sqrt(0.625) - 1) ** 2])
    got = np_(gradient_penalty(quadratic_critic, real, fake, weight=10.0, epsilon=eps,
                               reduce=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.isclose(np_(gradient_penalty(quadratic_critic, real, fake, weight=2.0,
                                           epsilon=eps)), expected.mean() / 5, rtol=1e-5)


def test_gradient_penalty_random_epsilon_in_range(rng):
    # |x~| for real=(1,0), fake=(0,0) equals epsilon, so the penalty reveals the drawn epsilon.
    real = np.tile([[1.0, 0.0]], (64, 1)).astype("float32")
    fake = np.zeros_like(real)
    per = np_(gradient_penalty(quadratic_critic, real, fake, weight=1.0, seed=3, reduce=False))
    eps = 1.0 - np.sqrt(per)
    assert np.all((eps >= 0) & (eps <= 1)) and eps.std() > 0.1  # one epsilon per sample


def test_gradient_penalty_differentiable_wrt_critic(rng):
    critic = build_local_critic(16, width=4)
    real = rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    fake = rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    with tf.GradientTape() as tape:
        gp = gradient_penalty(critic, real, fake, input_scale=127.5)
    weights = critic.trainable_weights
    grads = tape.gradient(gp, weights)
    assert np.isfinite(np_(gp)) and np_(gp) > 0
    # every weight but the final bias (which does not change the input gradient) gets a gradient
    assert [w.path for w, g in zip(weights, grads) if g is None] == ["score/bias"]
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_wasserstein_losses():
    real = np.array([[1.0], [3.0]], "float32")
    fake = np.array([[0.5], [-1.0]], "float32")
    assert np.isclose(np_(critic_wasserstein_loss(real, fake)), (0.5 - 1.0 - 1.0 - 3.0) / 2)
    np.testing.assert_allclose(np_(generator_adversarial_loss(fake, reduce=False)), [-0.5, 1.0])


# --- the generator objective (Eq. 6) -----------------------------------------------------------

OBJECTIVE_TERMS = dict(reconstruction=np.array([1.0, 2.0], "float32"),
                       adv_global=np.array([0.5, -1.0], "float32"),
                       adv_local=np.array([-0.25, 0.75], "float32"),
                       structure=np.array([4.0, 8.0], "float32"),
                       instance=np.array([10.0, 20.0], "float32"),
                       diversity=np.array([2.0, 0.0], "float32"))
OBJECTIVE_WEIGHTS = dict(adv_global_weight=3.0, adv_local_weight=5.0, structure_weight=0.5,
                         identity_weight=0.1)


def test_generator_objective_by_hand():
    got = np_(generator_objective(**OBJECTIVE_TERMS, **OBJECTIVE_WEIGHTS, reduce=False))
    # sample 0: 1 + 3·0.5 + 5·(−0.25) + 0.5·4 + 0.1·(10 + 2) = 1 + 1.5 − 1.25 + 2 + 1.2 = 4.45
    # sample 1: 2 + 3·(−1) + 5·0.75 + 0.5·8 + 0.1·(20 + 0) = 2 − 3 + 3.75 + 4 + 2 = 8.75
    np.testing.assert_allclose(got, [4.45, 8.75], rtol=1e-6)
    assert np.isclose(np_(generator_objective(**OBJECTIVE_TERMS, **OBJECTIVE_WEIGHTS)),
                      (4.45 + 8.75) / 2)


@pytest.mark.parametrize("term, weight", [("reconstruction", 1.0), ("adv_global", 3.0),
                                          ("adv_local", 5.0), ("structure", 0.5),
                                          ("instance", 0.1), ("diversity", 0.1)])
def test_generator_objective_weights_each_term(term, weight):
    """Only ``term`` non-zero: the objective is that term times its own weight."""
    only = {k: (v if k == term else np.zeros_like(v)) for k, v in OBJECTIVE_TERMS.items()}
    got = np_(generator_objective(**only, **OBJECTIVE_WEIGHTS, reduce=False))
    np.testing.assert_allclose(got, weight * OBJECTIVE_TERMS[term], rtol=1e-6)


def test_generator_objective_paper_weights_by_default():
    ones = {k: np.ones(1, "float32") for k in OBJECTIVE_TERMS}
    for term, weight in [("reconstruction", 1.0), ("adv_global", 300.0), ("adv_local", 300.0),
                         ("structure", 0.05), ("instance", 2e-4), ("diversity", 2e-4)]:
        only = {k: (v if k == term else 0.0 * v) for k, v in ones.items()}
        assert np.isclose(np_(generator_objective(**only)), weight, rtol=1e-6), term


# --- structure, instance, identity diversity ---------------------------------------------------

def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_structure_loss_reference(rng):
    proj = rng.normal(size=(3, 4)).astype("float32") / 100.0

    def parser(x):
        return keras.ops.einsum("nhwc,ck->nhwk", keras.ops.cast(x, "float32"), proj)

    gen = rng.uniform(0, 255, (2, 5, 6, 3)).astype("float32")
    truth = rng.uniform(0, 255, (2, 5, 6, 3)).astype("float32")
    lf = _np_log_softmax(gen @ proj)
    lt = truth @ proj
    hard = -np.take_along_axis(lf, lt.argmax(-1)[..., None], -1)[..., 0].mean(axis=(1, 2))
    soft_t = np.exp(_np_log_softmax(lt))
    soft = -(soft_t * lf).sum(-1).mean(axis=(1, 2))
    np.testing.assert_allclose(np_(structure_loss(parser, gen, truth, reduce=False)), hard,
                               rtol=1e-5)
    np.testing.assert_allclose(np_(structure_loss(parser, gen, truth, target="soft")), soft.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(np_(structure_loss(parser, gen, truth, reduction="sum")),
                               (hard * 30).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="target"):
        structure_loss(parser, gen, truth, target="x")


def test_structure_loss_gradient_only_through_generated(rng):
    proj = tf.constant(rng.normal(size=(3, 4)).astype("float32") / 100.0)
    gen = tf.constant(rng.uniform(0, 255, (1, 4, 4, 3)).astype("float32"))
    truth = tf.constant(rng.uniform(0, 255, (1, 4, 4, 3)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([gen, truth])
        loss = structure_loss(lambda x: tf.einsum("nhwc,ck->nhwk", x, proj), gen, truth)
    assert tape.gradient(loss, truth) is None
    assert tape.gradient(loss, gen) is not None


def test_instance_loss_reference(rng):
    lf, lr = rng.normal(size=(2, 3, 3, 4)), rng.normal(size=(2, 3, 3, 4))
    hf, hr = rng.normal(size=(2, 8)), rng.normal(size=(2, 8))
    expected = 0.5 * ((lf - lr) ** 2).mean(axis=(1, 2, 3)) + 0.05 * ((hf - hr) ** 2).mean(axis=1)
    np.testing.assert_allclose(np_(instance_loss(lf, lr, hf, hr, reduce=False)), expected,
                               rtol=1e-5)
    summed = 0.5 * ((lf - lr) ** 2).sum(axis=(1, 2, 3)) + 0.05 * ((hf - hr) ** 2).sum(axis=1)
    np.testing.assert_allclose(np_(instance_loss(lf, lr, hf, hr, reduction="sum", reduce=False)),
                               summed, rtol=1e-5)
    high_only = 0.05 * ((hf - hr) ** 2).mean(axis=1).mean()
    assert np.isclose(np_(instance_loss(None, None, hf, hr)), high_only, rtol=1e-5)
    with pytest.raises(ValueError, match="both"):
        instance_loss(lf, None, hf, hr)


def test_identity_diversity_loss_reference_and_hinge(rng):
    truth = rng.normal(size=(4, 6)).astype("float32")
    centroids = rng.normal(size=(4, 6)).astype("float32")
    fake = rng.normal(size=(4, 6)).astype("float32")
    # sample 2: the inpainted feature is closer to the centroid than the truth -> hinge gives 0
    fake[2] = centroids[2] + 0.1 * (truth[2] - centroids[2])
    d_fake = np.linalg.norm(fake - centroids, axis=1)
    d_real = np.linalg.norm(truth - centroids, axis=1)
    expected = 0.5 * np.maximum(d_fake - d_real, 0.0)
    assert expected[2] == 0.0
    got = np_(identity_diversity_loss(fake, truth, centroids, reduce=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got[2] == 0.0
    assert np.isclose(np_(identity_diversity_loss(fake, truth, centroids, beta=2.0)),
                      4 * expected.mean(), rtol=1e-5)
    # full centroid table + labels gathers the same rows
    table = np.concatenate([centroids[::-1], rng.normal(size=(2, 6))]).astype("float32")
    labels = np.array([3, 2, 1, 0])
    np.testing.assert_allclose(
        np_(identity_diversity_loss(fake, truth, table, labels=labels, reduce=False)), expected,
        rtol=1e-5, atol=1e-6)


def test_identity_diversity_gradient_zero_inside_hinge(rng):
    truth = tf.constant([[3.0, 0.0]])
    centroid = tf.constant([[0.0, 0.0]])
    close = tf.Variable([[1.0, 0.0]])   # closer than the truth: no loss, no gradient
    far = tf.Variable([[0.0, 4.0]])     # farther: loss 0.5 * (4 - 3), gradient 0.5 * unit vector
    with tf.GradientTape(persistent=True) as tape:
        l_close = identity_diversity_loss(close, truth, centroid)
        l_far = identity_diversity_loss(far, truth, centroid)
    assert float(l_close) == 0.0
    np.testing.assert_allclose(tape.gradient(l_close, close).numpy(), [[0.0, 0.0]])
    assert np.isclose(float(l_far), 0.5)
    np.testing.assert_allclose(tape.gradient(l_far, far).numpy(), [[0.0, 0.5]], atol=1e-6)
