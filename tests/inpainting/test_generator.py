"""Generator G: shapes, range, exact composite, white pre-fill, serialization."""
import numpy as np
import pytest

import keras

from occface.inpainting import (HoleComposite, HoleFill, build_generator,
                                generator_with_raw_output)


def _batch(rng, size, n=2):
    images = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    masks = np.zeros((n, size, size, 1), "float32")
    masks[0, 4:20, 6:18] = 1
    masks[1, size // 2:, : size // 3] = 1  # touches the border
    return images, masks


@pytest.mark.parametrize("size", [32, 112])
def test_shapes_range_and_exact_composite(rng, size):
    generator = build_generator(size, width=4)
    images, masks = _batch(rng, size)
    out = keras.ops.convert_to_numpy(generator([images, masks]))
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 255.0
    known = masks[..., 0] == 0
    # Known pixels are the input bit-for-bit, the hole comes from G.
    np.testing.assert_array_equal(out[known], images[known])
    assert not np.allclose(out[~known], images[~known])


def test_hole_content_is_ignored(rng):
    """The hole is pre-filled white, so whatever the input holds there cannot leak into G."""
    generator = build_generator(32, width=4)
    images, masks = _batch(rng, 32)
    other = images.copy()
    other[masks[..., 0] > 0] = rng.uniform(0, 255, (int(masks.sum()), 3))
    a = keras.ops.convert_to_numpy(generator([images, masks]))
    b = keras.ops.convert_to_numpy(generator([other, masks]))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_hole_fill_layer_values():
    x = np.full((1, 2, 2, 3), -0.5, "float32")
    m = np.array([[[[1.0], [0.0]], [[0.0], [1.0]]]], "float32")
    y = keras.ops.convert_to_numpy(HoleFill(1.0)([x, m]))
    assert y.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(y[0, 0, 0], [1, 1, 1, 1])
    np.testing.assert_array_equal(y[0, 0, 1], [-0.5, -0.5, -0.5, 0])
    comp = keras.ops.convert_to_numpy(HoleComposite()([np.full_like(x, 7.0), x, m]))
    np.testing.assert_array_equal(comp[0, 0, 0], [7, 7, 7])
    np.testing.assert_array_equal(comp[0, 1, 0], [-0.5, -0.5, -0.5])


def test_raw_output_model_shares_weights(rng):
    generator = build_generator(32, width=4)
    both = generator_with_raw_output(generator)
    images, masks = _batch(rng, 32)
    completed, raw = [keras.ops.convert_to_numpy(t) for t in both([images, masks])]
    np.testing.assert_allclose(completed, keras.ops.convert_to_numpy(generator([images, masks])),
                               atol=1e-5)
    hole = masks[..., 0] > 0
    np.testing.assert_allclose(completed[hole], raw[hole], atol=1e-5)
    assert both.trainable_weights[0] is generator.trainable_weights[0]


def test_serialization_roundtrip(tmp_path, rng):
    generator = build_generator(32, width=4, dilation_rates=(2, 4))
    path = tmp_path / "g.keras"
    generator.save(path)
    loaded = keras.saving.load_model(path)
    images, masks = _batch(rng, 32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded([images, masks])),
                               keras.ops.convert_to_numpy(generator([images, masks])), atol=1e-5)


def test_dilated_convs_present():
    generator = build_generator(32, width=4)
    rates = [layer.dilation_rate[0] for layer in generator.layers
             if isinstance(layer, keras.layers.Conv2D) and layer.dilation_rate[0] > 1]
    assert rates == [2, 4, 8, 16]


@pytest.mark.parametrize("bad", [30, 0, -4])
def test_bad_size(bad):
    with pytest.raises(ValueError, match="multiple of 4"):
        build_generator(bad, width=4)
