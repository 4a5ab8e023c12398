"""occface layers under JAX / PyTorch: the TensorFlow suite's numeric checks, backend-agnostic."""
import math

import keras
import numpy as np
import pytest
from keras import ops

from occface.layers import (LCD, SAM, ArcFace, Cutout, DropBlock, ResponseDecorrelation,
                            WeightedChannelDropout)
from occface.losses import response_decorrelation
from tests_backends.conftest import grad


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _dropped_counts(y):
    return (np.abs(y).sum(axis=(1, 2)) == 0).sum(axis=1)


# --------------------------------------------------------------------------------- LCD
def test_lcd_per_sample_fraction_follows_uniform_rate():
    # C = 10, γ ~ U[0, 0.6], k = round(10 γ): P(k=0) = P(k=6) = 1/12, P(k=1..5) = 1/6 each
    n, c = 6000, 10
    y = _np(LCD(0.0, 0.6, seed=3)(np.ones((n, 1, 1, c), "float32"), training=True))
    counts = np.bincount(_dropped_counts(y), minlength=c + 1)
    assert counts[7:].sum() == 0
    expected = n * np.array([1 / 12] + [1 / 6] * 5 + [1 / 12])
    chi2 = (((counts[:7] - expected) ** 2) / expected).sum()
    assert chi2 < 22.46, (counts, chi2)  # df = 6, p = 0.001


def test_lcd_exact_count_whole_channels_unscaled(rng):
    x = rng.uniform(0.5, 1.5, (64, 3, 3, 8)).astype("float32")
    y = _np(LCD(0.5, 0.5, seed=0)(x, training=True))
    assert (_dropped_counts(y) == 4).all()                       # round(0.5 · 8), every sample
    kept = np.abs(y).sum(axis=(1, 2)) > 0
    assert len({m.tobytes() for m in kept}) > 10                  # drawn per sample
    np.testing.assert_array_equal(y[np.broadcast_to(kept[:, None, None], y.shape)],
                                  x[np.broadcast_to(kept[:, None, None], x.shape)])


def test_lcd_channels_chosen_uniformly():
    y = _np(LCD(0.3, 0.3, seed=2)(np.ones((4000, 1, 1, 10), "float32"), training=True))
    np.testing.assert_allclose((y[:, 0, 0] == 0).mean(axis=0), 0.3, atol=0.03)


def test_lcd_identity_at_inference_and_gradient_only_through_kept(rng):
    x = rng.uniform(0.5, 1.0, (8, 3, 3, 10)).astype("float32")
    np.testing.assert_array_equal(_np(LCD(0.5, 0.6)(x)), x)
    w = rng.normal(size=x.shape).astype("float32")
    wt = ops.convert_to_tensor(w)
    layer = LCD(0.2, 0.6, seed=4)
    y = _np(LCD(0.2, 0.6, seed=4)(x, training=True))             # same seed ⇒ same mask
    g = grad(lambda t: ops.sum(layer(t, training=True) * wt), x)
    dropped = y == 0
    assert dropped.any() and (~dropped).any()
    assert np.all(g[dropped] == 0)
    np.testing.assert_allclose(g[~dropped], w[~dropped])


# --------------------------------------------------------------------------------- SAM
def test_sam_matches_eq7_numpy(rng):
    x = rng.normal(size=(2, 4, 3, 8)).astype("float32")
    layer = SAM(reduction=2, return_attention=True)
    layer(x)
    theta0 = _np(layer(x)[1])
    np.testing.assert_allclose(theta0, 0.95, rtol=1e-6)           # starts near the identity
    for v in layer.weights:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))
    y, theta = (_np(t) for t in layer(x))
    ck, cb = (_np(v) for v in layer.conv.weights)
    z = np.maximum(np.einsum("nhwc,cd->nhwd", x, ck[0, 0]) + cb, 0).reshape(2, -1)
    k1, b1 = (_np(v) for v in layer.fc1.weights)
    k2, b2 = (_np(v) for v in layer.fc2.weights)
    ref = 1 / (1 + np.exp(-(np.maximum(z @ k1 + b1, 0) @ k2 + b2)))
    np.testing.assert_allclose(theta, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, x * ref[:, None, None, :], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- ArcFace
def _numpy_arcface(emb, kernel, labels, m, s):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    cos = np.clip(e @ w, -1, 1)
    out = s * cos.copy()
    for n, y in enumerate(labels):
        theta = math.acos(cos[n, y])
        out[n, y] = s * (math.cos(theta + m) if theta + m <= math.pi
                         else cos[n, y] - m * math.sin(m))
    return out


def _arcface(kernel, **kwargs):
    layer = ArcFace(kernel.shape[1], **kwargs)
    layer.build([(None, kernel.shape[0]), (None,)])
    layer.kernel.assign(kernel)
    return layer


def test_arcface_logits_match_numpy(rng):
    emb = rng.normal(size=(6, 5)).astype("float32")
    kernel = rng.normal(size=(5, 7)).astype("float32")
    labels = np.array([0, 3, 6, 2, 2, 1], "int32")
    out = _np(_arcface(kernel, margin=0.5, scale=64.0)([emb, labels]))
    assert out.shape == (6, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, _numpy_arcface(emb, kernel, labels, 0.5, 64.0),
                               rtol=1e-4, atol=1e-3)


def test_arcface_theta_plus_margin_beyond_pi():
    m, s = 0.5, 10.0
    angles = np.array([0.3, math.pi - 0.6, math.pi - 0.4, math.pi - 0.1, math.pi])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    out = _np(_arcface(np.eye(2, dtype="float32"), margin=m, scale=s)(
        [emb, np.zeros(5, "int32")]))[:, 0]
    expected = [s * math.cos(angles[0] + m), s * math.cos(angles[1] + m)] + \
        [s * (math.cos(a) - m * math.sin(m)) for a in angles[2:]]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


def test_arcface_finite_gradient_at_zero_angle(rng):
    kernel = rng.normal(size=(4, 3)).astype("float32")
    layer = _arcface(kernel)
    emb = kernel.T.copy()                                          # θ_y = 0 for every sample
    labels = np.arange(3, dtype="int32")
    g = grad(lambda t: ops.sum(layer([t, labels])), emb)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(np.diag(_np(layer([emb, labels]))), 64 * math.cos(0.5),
                               atol=2e-2)


# ------------------------------------------------------------------------------ baselines
def test_dropblock_fraction_blocks_and_rescaling():
    n, h, w, b, rate = 2000, 10, 12, 3, 0.15
    y = _np(DropBlock(block_size=b, rate=rate, seed=0)(np.ones((n, h, w, 2), "float32"),
                                                        training=True))
    gamma = rate * h * w / (b * b * (h - b + 1) * (w - b + 1))
    cover = np.array([[sum(r <= i < r + b for r in range(h - b + 1)) *
                       sum(c <= j < c + b for c in range(w - b + 1)) for j in range(w)]
                      for i in range(h)])
    expected = (1 - (1 - gamma) ** cover).mean()                   # Ghiasi et al.
    dropped = y[..., 0] == 0
    assert abs(dropped.mean() - expected) < 0.006
    np.testing.assert_array_equal(y[..., 0], y[..., 1])            # one mask for all channels
    np.testing.assert_allclose(y[..., 0][~dropped], 1 / (1 - dropped.mean()), rtol=1e-5)


def test_wcd_drops_weak_channels_and_rescales(rng):
    # channel c has magnitude c + 1 (c = 0 … 7); keep M = 4 by WRS, no RNG step
    x = np.tile(np.arange(1, 9, dtype="float32"), (3000, 2, 2, 1))
    y = _np(WeightedChannelDropout(wrs_ratio=0.5, q=1.0, rescale=True, seed=0)(
        x, training=True))
    kept = y[:, 0, 0] != 0
    assert (kept.sum(axis=1) == 4).all()
    keep_rate = kept.mean(axis=0)
    assert np.all(np.diff(keep_rate) > 0)                         # stronger ⇒ kept more often
    # α = Σ scores / Σ kept scores, applied to the kept channels
    alpha = x[:, 0, 0].sum(axis=1) / (x[:, 0, 0] * kept).sum(axis=1)
    np.testing.assert_allclose(y[:, 0, 0][kept], (x[:, 0, 0] * alpha[:, None])[kept],
                               rtol=1e-5)


def test_cutout_one_square_hole_per_sample():
    size = 4
    y = _np(Cutout(size=size, seed=0)(np.ones((200, 16, 16, 3), "float32"), training=True))
    holes = y[..., 0] == 0
    np.testing.assert_array_equal(y[..., 0], y[..., 2])
    for hole in holes:                                              # a clipped size×size square
        rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
        assert hole.sum() == len(rows) * len(cols) and len(rows) <= size >= len(cols)
    assert (holes.sum(axis=(1, 2)) == size * size).mean() > 0.4      # most fully inside


def test_response_decorrelation_adds_weighted_eq2(rng):
    f = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    layer = ResponseDecorrelation(weight=0.5, reduction="sum")
    np.testing.assert_array_equal(_np(layer(f, training=True)), f)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(_np(layer.losses[0]), 0.5 * _np(response_decorrelation(f)),
                               rtol=1e-6)
