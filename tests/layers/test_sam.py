"""Spatial attention module (paper Eq. 7)."""
import numpy as np
import pytest
import tensorflow as tf

from occface.layers import SAM


def _numpy_sam(layer, x):
    """Eq. 7 from the definition: 1×1 conv → ReLU → row-major flatten → FC → ReLU → FC → σ."""
    ck, cb = [np.asarray(v) for v in layer.conv.weights]
    z = np.maximum(np.einsum("nhwc,cd->nhwd", x, ck[0, 0]) + cb, 0)
    z = z.reshape(z.shape[0], -1)
    k1, b1 = [np.asarray(v) for v in layer.fc1.weights]
    k2, b2 = [np.asarray(v) for v in layer.fc2.weights]
    theta = 1 / (1 + np.exp(-(np.maximum(z @ k1 + b1, 0) @ k2 + b2)))
    return x * theta[:, None, None, :], theta


def test_near_identity_at_init(rng):
    x = rng.normal(size=(3, 5, 5, 16)).astype("float32")
    layer = SAM(reduction=4, return_attention=True)
    y, theta = [np.asarray(t) for t in layer(x)]
    np.testing.assert_allclose(theta, 0.95, rtol=1e-6)
    np.testing.assert_allclose(y, 0.95 * x, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(y - x) <= 0.05 * np.abs(x) + 1e-6)


def test_matches_numpy_reference_and_is_location_aware(rng):
    x = rng.normal(size=(2, 4, 3, 8)).astype("float32")
    layer = SAM(reduction=2, return_attention=True)
    layer(x)
    for v in layer.weights:           # move away from the (constant) initial attention
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))
    y, theta = [np.asarray(t) for t in layer(x)]
    y_ref, theta_ref = _numpy_sam(layer, x)
    np.testing.assert_allclose(theta, theta_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    assert np.all((theta > 0) & (theta < 1))
    # the FC layer sees the spatial layout: a mirrored input (same channel statistics)
    # gets a different attention.
    _, theta_flip = layer(x[:, :, ::-1, :].copy())
    assert np.abs(np.asarray(theta_flip) - theta).max() > 1e-3


def test_shapes_and_output_shape():
    layer = SAM(reduction=16)
    y = layer(np.zeros((2, 7, 7, 32), "float32"))
    assert y.shape == (2, 7, 7, 32)
    assert layer.compute_output_shape((None, 7, 7, 32)) == (None, 7, 7, 32)
    assert layer.conv.filters == 2 and layer.fc1.units == 2 and layer.fc2.units == 32
    att = SAM(reduction=64, return_attention=True)
    assert att.compute_output_shape((None, 7, 7, 32)) == ((None, 7, 7, 32), (None, 32))
    att(np.zeros((1, 7, 7, 32), "float32"))
    assert att.conv.filters == 1                       # max(1, C // reduction)


def test_learns_from_first_step(rng):
    x = tf.constant(rng.normal(size=(4, 3, 3, 8)).astype("float32"))
    layer = SAM(reduction=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * tf.constant(rng.normal(size=(4, 3, 3, 8)), tf.float32))
    grads = dict(zip([v.path for v in layer.trainable_weights],
                     tape.gradient(loss, layer.trainable_weights)))
    fc2_kernel = [g for p, g in grads.items() if "fc2" in p and "kernel" in p][0]
    assert np.abs(fc2_kernel.numpy()).max() > 0


def test_errors():
    with pytest.raises(ValueError, match="H, W"):
        SAM().build((None, None, None, 8))
    with pytest.raises(ValueError, match="reduction"):
        SAM(reduction=0)
    with pytest.raises(ValueError, match="initial_attention"):
        SAM(initial_attention=1.0)
