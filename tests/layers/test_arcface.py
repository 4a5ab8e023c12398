"""ArcFace logits against a numpy reference written from the ArcFace definition."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.layers import ArcFace


def _numpy_arcface(emb, kernel, labels, m, s):
    """s·cos(θ_y + m) for the target (s·(cos θ_y − m sin m) when θ_y + m > π), s·cos θ_j else."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    cos = np.clip(e @ w, -1, 1)
    theta = np.arccos(cos)
    out = s * cos.copy()
    for n, y in enumerate(labels):
        if theta[n, y] + m <= math.pi:
            out[n, y] = s * math.cos(theta[n, y] + m)
        else:
            out[n, y] = s * (cos[n, y] - m * math.sin(m))
    return out


def _layer(kernel, **kwargs):
    layer = ArcFace(kernel.shape[1], **kwargs)
    layer.build([(None, kernel.shape[0]), (None,)])
    layer.kernel.assign(kernel)
    return layer


def test_logits_match_numpy(rng):
    emb = rng.normal(size=(6, 5)).astype("float32")
    kernel = rng.normal(size=(5, 7)).astype("float32")
    labels = np.array([0, 3, 6, 2, 2, 1])
    out = np.asarray(_layer(kernel, margin=0.5, scale=64.0)([emb, labels]))
    assert out.shape == (6, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, _numpy_arcface(emb, kernel, labels, 0.5, 64.0),
                               rtol=1e-4, atol=1e-3)


def test_theta_plus_margin_beyond_pi_fallback():
    m, s = 0.5, 10.0
    kernel = np.eye(2, dtype="float32")                    # class 0 along x, class 1 along y
    angles = np.array([0.3, math.pi - 0.6, math.pi - 0.4, math.pi - 0.1, math.pi])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    labels = np.zeros(len(angles), int)
    out = np.asarray(_layer(kernel, margin=m, scale=s)([emb, labels]))[:, 0]
    expected = [s * math.cos(angles[0] + m), s * math.cos(angles[1] + m)] + \
        [s * (math.cos(a) - m * math.sin(m)) for a in angles[2:]]     # θ + m > π
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out, _numpy_arcface(emb, kernel, labels, m, s)[:, 0],
                               rtol=1e-4, atol=1e-3)


def test_target_logit_monotone_in_angle():
    angles = np.linspace(0.0, math.pi, 200)
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    out = np.asarray(_layer(np.eye(2, dtype="float32"), scale=1.0)(
        [emb, np.zeros(200, int)]))[:, 0]
    assert np.all(np.diff(out) < 0)            # larger angle to the class ⇒ smaller logit
    # the only jump is insightface's step at θ = π − m: from cos(π) = −1 to −cos m − m sin m
    jumps = np.flatnonzero(np.abs(np.diff(out)) > 0.05)
    assert len(jumps) == 1
    assert angles[jumps[0]] <= math.pi - 0.5 < angles[jumps[0] + 1]
    np.testing.assert_allclose(out[jumps[0] + 1], math.cos(angles[jumps[0] + 1]) -
                               0.5 * math.sin(0.5), rtol=1e-5)


def test_easy_margin():
    angles = np.array([0.4, 2.0])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    out = np.asarray(_layer(np.eye(2, dtype="float32"), margin=0.3, scale=2.0,
                            easy_margin=True)([emb, np.array([0, 0])]))
    np.testing.assert_allclose(out[:, 0], [2 * math.cos(0.7), 2 * math.cos(2.0)], rtol=1e-5)


def test_labels_column_and_finite_gradient_at_zero_angle(rng):
    kernel = rng.normal(size=(4, 3)).astype("float32")
    layer = _layer(kernel)
    emb = tf.constant(kernel.T.copy())                      # θ_y = 0 exactly for every sample
    labels = np.arange(3).reshape(3, 1)
    with tf.GradientTape() as tape:
        tape.watch(emb)
        logits = layer([emb, labels])
        loss = tf.reduce_sum(logits)
    g_emb, g_w = tape.gradient(loss, [emb, layer.kernel])
    assert np.isfinite(g_emb.numpy()).all() and np.isfinite(g_w.numpy()).all()
    # float32 resolves sin θ near θ = 0 only to ≈ 3e-4, hence the tolerance on a scale of 64
    np.testing.assert_allclose(np.diag(logits.numpy()), 64 * math.cos(0.5), atol=2e-2)


def test_mixed_float16_policy(rng):
    emb = rng.normal(size=(4, 6)).astype("float32")
    kernel = rng.normal(size=(6, 5)).astype("float32")
    labels = np.array([0, 1, 4, 4])
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((6,))
        lab = keras.Input((), dtype="int32")
        dense = keras.layers.Dense(6, use_bias=False)
        h = dense(inputs)                                           # float16 activations
        head = ArcFace(5)
        model = keras.Model([inputs, lab], head([h, lab]))
        dense.kernel.assign(np.eye(6, dtype="float32"))
        head.kernel.assign(kernel)
        assert h.dtype == "float16" and head.compute_dtype == "float32"
        logits = model([emb, labels])
        assert logits.dtype == "float32"
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model([emb, labels]))
        grads = tape.gradient(loss, model.trainable_weights)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    ref = _numpy_arcface(emb.astype("float16").astype("float32"), kernel, labels, 0.5, 64.0)
    np.testing.assert_allclose(np.asarray(logits), ref, rtol=1e-3, atol=2e-2)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_errors():
    with pytest.raises(ValueError, match="num_classes"):
        ArcFace(0)
    with pytest.raises(ValueError, match="margin"):
        ArcFace(3, margin=2.0)
    with pytest.raises(ValueError, match="scale"):
        ArcFace(3, scale=0.0)
    with pytest.raises(ValueError, match="embeddings, labels"):
        ArcFace(3).build((None, 4))
