"""LCD channel dropout (paper Eq. 3–4) against hand-derived statistics."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.layers import LCD


def _dropped_counts(y):
    """Number of all-zero channels per sample of a (N, H, W, C) array."""
    return (np.abs(y).sum(axis=(1, 2)) == 0).sum(axis=1)


def test_per_sample_fraction_follows_uniform_rate():
    # C = 10, γ ~ U[0, 0.6], k = round(10 γ): P(k=0) = P(γ < .05) = 1/12, P(k=6) = 1/12,
    # P(k=1..5) = 0.1/0.6 = 1/6 each.
    n, c = 6000, 10
    x = np.ones((n, 1, 1, c), "float32")
    y = np.asarray(LCD(0.0, 0.6, seed=3)(x, training=True))
    counts = np.bincount(_dropped_counts(y), minlength=c + 1)
    assert counts[7:].sum() == 0
    expected = n * np.array([1 / 12] + [1 / 6] * 5 + [1 / 12])
    chi2 = (((counts[:7] - expected) ** 2) / expected).sum()
    assert chi2 < 22.46, (counts, chi2)  # df = 6, p = 0.001


def test_fraction_is_uniform_between_bounds():
    n, c = 3000, 100
    x = np.ones((n, 1, 1, c), "float32")
    frac = _dropped_counts(np.asarray(LCD(0.2, 0.4, seed=5)(x, training=True))) / c
    assert frac.min() >= 0.2 and frac.max() <= 0.4
    # Kolmogorov–Smirnov distance to U[0.2, 0.4] (discretised at 1/C).
    grid = np.linspace(0.2, 0.4, 21)
    ecdf = np.array([(frac <= g + 1e-9).mean() for g in grid])
    assert np.abs(ecdf - (grid - 0.2) / 0.2).max() < 0.06
    assert abs(frac.mean() - 0.3) < 0.01


def test_exact_count_distinct_channels_and_per_sample_masks(rng):
    x = rng.uniform(0.5, 1.5, (64, 3, 3, 8)).astype("float32")
    y = np.asarray(LCD(0.5, 0.5, seed=0)(x, training=True))
    assert (_dropped_counts(y) == 4).all()            # 4 distinct channels, every sample
    masks = np.abs(y).sum(axis=(1, 2)) > 0
    assert len({m.tobytes() for m in masks}) > 10      # drawn independently per sample


def test_whole_channels_dropped_kept_channels_unchanged(rng):
    x = rng.uniform(0.1, 2.0, (16, 5, 4, 12)).astype("float32")
    y = np.asarray(LCD(0.0, 0.6, seed=1)(x, training=True))
    for n in range(16):
        for ch in range(12):
            if np.any(y[n, ..., ch] == 0):
                assert np.all(y[n, ..., ch] == 0)                   # over all H×W
            else:
                np.testing.assert_array_equal(y[n, ..., ch], x[n, ..., ch])   # no rescaling


def test_channels_chosen_uniformly():
    n, c = 4000, 10
    y = np.asarray(LCD(0.3, 0.3, seed=2)(np.ones((n, 1, 1, c), "float32"), training=True))
    per_channel = (y[:, 0, 0, :] == 0).mean(axis=0)
    np.testing.assert_allclose(per_channel, 0.3, atol=0.03)


def test_identity_at_inference(rng):
    x = rng.normal(size=(4, 3, 3, 6)).astype("float32")
    layer = LCD(0.5, 0.6, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(LCD(0.0, 0.0)(x, training=True)), x)
    assert np.all(np.asarray(LCD(1.0, 1.0)(x, training=True)) == 0)


def test_gradient_zero_on_dropped_channels_only(rng):
    x = tf.constant(rng.uniform(0.5, 1.0, (8, 3, 3, 10)).astype("float32"))
    w = tf.constant(rng.normal(size=(8, 3, 3, 10)).astype("float32"))
    layer = LCD(0.2, 0.6, seed=4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * w)
    grad = tape.gradient(loss, x).numpy()
    dropped = (y.numpy() == 0)
    assert dropped.any() and (~dropped).any()
    assert np.all(grad[dropped] == 0)
    np.testing.assert_allclose(grad[~dropped], w.numpy()[~dropped])


@pytest.mark.parametrize("kwargs", [dict(min_rate=-0.1), dict(max_rate=1.5),
                                    dict(min_rate=0.7, max_rate=0.6), dict(max_rate="a")])
def test_bad_rates_raise(kwargs):
    with pytest.raises(ValueError, match="rate"):
        LCD(**kwargs)


def test_seeded_layers_repeat():
    x = np.ones((8, 1, 1, 16), "float32")
    a = np.asarray(LCD(seed=7)(x, training=True))
    b = np.asarray(LCD(seed=7)(x, training=True))
    np.testing.assert_array_equal(a, b)


def test_mixed_float16_keeps_dtype(rng):
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = LCD(0.5, 0.5, seed=0)
        y = layer(rng.uniform(1, 2, (4, 2, 2, 6)).astype("float16"), training=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert y.dtype == "float16"
    assert (_dropped_counts(np.asarray(y)) == 3).all()
