"""Frozen recognizer adapter and identity centroids."""
import numpy as np
import pytest

import keras
import tensorflow as tf

from occface.inpainting import RecognizerFeatures, identity_centroids


def toy_recognizer(size=16, dim=8):
    """A functional model with occface IR-ResNet-like layer names."""
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(image)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="stem_conv")(x)
    a = keras.layers.Add(name="stage2_block1_add")([x, x])
    b = keras.layers.Conv2D(4, 3, padding="same", name="stage2_block2_conv")(a)
    b = keras.layers.Add(name="stage2_block2_add")([a, b])
    y = keras.layers.GlobalAveragePooling2D(name="gap")(b)
    y = keras.layers.Dense(dim, name="embedding")(y)
    return keras.Model(image, y, name="toy")


def test_auto_low_layer_and_frozen(rng):
    model = toy_recognizer()
    features = RecognizerFeatures(model)
    assert features.low_layer == "stage2_block2_add" and features.has_low
    assert not model.trainable_weights
    x = tf.constant(rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        low, high = features(x)
        loss = tf.reduce_sum(high) + tf.reduce_sum(low)
    assert tuple(low.shape) == (2, 8, 8, 4) and tuple(high.shape) == (2, 8)
    np.testing.assert_allclose(high.numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0  # flows to the image


def test_resize_and_explicit_layers(rng):
    model = toy_recognizer(16)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    features = RecognizerFeatures(model, low_layer="stage2_block1_add")
    low, high = features(x)
    assert tuple(low.shape) == (2, 8, 8, 4)
    expected = model(tf.image.resize(x, (16, 16))).numpy()
    np.testing.assert_allclose(high.numpy(), expected, rtol=1e-4, atol=1e-4)
    low, high = RecognizerFeatures(model, low_layer=None)(x[:, :16, :16])
    assert low is None and tuple(high.shape) == (2, 8)
    with pytest.raises(ValueError, match="no layer"):
        RecognizerFeatures(model, low_layer="nope")


def test_model_without_stages_and_callables(rng):
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    features = RecognizerFeatures(plain)
    assert not features.has_low
    x = rng.uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    assert features(x)[0] is None
    signature = lambda images: {"embedding": tf.reduce_mean(images, axis=(1, 2))}  # noqa: E731
    low, high = RecognizerFeatures(signature)(x)
    assert low is None
    np.testing.assert_allclose(high.numpy(), x.mean(axis=(1, 2)), rtol=1e-5)
    with pytest.raises(ValueError, match="Keras functional"):
        RecognizerFeatures(signature, low_layer="stage2")


def test_identity_centroids_reference(rng):
    def embed(images):
        return tf.reduce_mean(tf.cast(images, tf.float32), axis=(1, 2))  # (N, 3)

    images = rng.uniform(0, 255, (10, 4, 4, 3)).astype("float32")
    labels = np.array([0, 1, 1, 3, 0, 3, 3, 1, 0, 0])
    batches = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    feats = images.mean(axis=(1, 2))
    centroids, counts = identity_centroids(embed, batches, num_classes=5, return_counts=True)
    assert centroids.shape == (5, 3) and centroids.dtype == np.float32
    np.testing.assert_array_equal(counts, [4, 3, 0, 3, 0])
    for k in (0, 1, 3):
        np.testing.assert_allclose(centroids[k], feats[labels == k].mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(centroids[[2, 4]], 0)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    normed = identity_centroids(embed, batches, normalize=True)
    assert normed.shape == (4, 3)
    np.testing.assert_allclose(normed[1], unit[labels == 1].mean(axis=0), rtol=1e-5)
    # tf.data input with extra elements works too
    ds = tf.data.Dataset.from_tensor_slices((images, labels, labels)).batch(3)
    np.testing.assert_allclose(identity_centroids(embed, ds), centroids[:4], rtol=1e-5)


def test_identity_centroids_errors():
    embed = lambda images: tf.reduce_mean(images, axis=(1, 2))  # noqa: E731
    with pytest.raises(ValueError, match="empty"):
        identity_centroids(embed, [])
    with pytest.raises(ValueError, match="out of range"):
        identity_centroids(embed, [(np.zeros((1, 2, 2, 3)), np.array([4]))], num_classes=2)
