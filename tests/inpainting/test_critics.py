"""Critics (WGAN: linear output, no batch norm) and the local patch crop."""
import numpy as np
import pytest

import keras
import tensorflow as tf

from occface.inpainting import (build_global_critic, build_local_critic, crop_hole_patch,
                                hole_boxes)


def _convs(model):
    return [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]


def test_global_critic_structure():
    critic = build_global_critic(128, width=4, max_width=8)
    assert len(_convs(critic)) == 10  # the paper's 10 convs at 128 px
    assert critic.layers[-1].name == "score" and critic.layers[-1].activation.__name__ == "linear"
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in critic.layers)
    assert critic.output_shape == (None, 1)


def test_local_critic_and_independent_samples(rng):
    critic = build_local_critic(32, width=4, norm="layer")
    x = rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    s1 = keras.ops.convert_to_numpy(critic(x))
    x2 = x.copy()
    x2[1] = 255 - x2[1]
    s2 = keras.ops.convert_to_numpy(critic(x2))
    assert s1.shape == (3, 1)
    np.testing.assert_allclose(s1[[0, 2]], s2[[0, 2]], rtol=1e-5, atol=1e-6)
    assert not np.allclose(s1[1], s2[1])


def test_critic_serialization(tmp_path, rng):
    critic = build_global_critic(32, width=4)
    critic.save(tmp_path / "c.keras")
    loaded = keras.saving.load_model(tmp_path / "c.keras")
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(critic(x)), rtol=1e-5, atol=1e-5)


def test_hole_boxes():
    mask = np.zeros((3, 20, 24, 1), "float32")
    mask[0, 3:9, 5:11] = 1
    mask[1, 15:20, 0:2] = 1
    boxes = keras.ops.convert_to_numpy(hole_boxes(mask))
    np.testing.assert_array_equal(boxes[0], [3, 5, 9, 11])
    np.testing.assert_array_equal(boxes[1], [15, 0, 20, 2])
    np.testing.assert_array_equal(boxes[2], [10, 12, 10, 12])  # empty: the centre


def test_crop_matches_slicing_and_clamps(rng):
    images = rng.uniform(0, 255, (3, 20, 24, 3)).astype("float32")
    boxes = np.array([[3, 5, 9, 11], [15, 0, 20, 2], [10, 12, 10, 12]], "int32")
    patches = keras.ops.convert_to_numpy(crop_hole_patch(images, boxes, 8))
    assert patches.shape == (3, 8, 8, 3)
    # centre (6, 8) -> top 2, left 4; centre (17, 1) clamped to bottom-left; centre (10, 12).
    np.testing.assert_array_equal(patches[0], images[0, 2:10, 4:12])
    np.testing.assert_array_equal(patches[1], images[1, 12:20, 0:8])
    np.testing.assert_array_equal(patches[2], images[2, 6:14, 8:16])


def test_crop_gradient_is_indicator(rng):
    images = tf.constant(rng.uniform(0, 255, (1, 10, 10, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(crop_hole_patch(images, [[2, 2, 4, 4]], 4))
    grad = tape.gradient(total, images).numpy()[0, ..., 0]
    expected = np.zeros((10, 10))
    expected[1:5, 1:5] = 1
    np.testing.assert_array_equal(grad, expected)


def test_crop_too_large():
    with pytest.raises(ValueError, match="patch_size"):
        crop_hole_patch(np.zeros((1, 8, 8, 3), "float32"), [[0, 0, 1, 1]], 9)
