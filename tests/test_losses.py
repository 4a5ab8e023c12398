"""Spatial-regularization losses (paper Eq. 1–2) and the ArcFace softmax loss vs numpy."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.layers import ResponseDecorrelation
from occface.losses import (FilterOrthogonalityRegularizer, arcface_loss, filter_orthogonality,
                            response_decorrelation)


def _cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def _numpy_eq1(kernel):
    """Σ_{i≠j} |Σ_p cos(w_i^p, w_j^p)|, w_i^p = kernel[ph, pw, :, i]."""
    kh, kw, _, c = kernel.shape
    total = 0.0
    for i in range(c):
        for j in range(c):
            if i != j:
                total += abs(sum(_cos(kernel[a, b, :, i], kernel[a, b, :, j])
                                 for a in range(kh) for b in range(kw)))
    return total


def _numpy_eq2(features):
    """mean_n Σ_{i≠j} cos(f_i, f_j)², f_i = features[n, :, :, i].ravel()."""
    n, _, _, c = features.shape
    per = [sum(_cos(features[s, ..., i].ravel(), features[s, ..., j].ravel()) ** 2
               for i in range(c) for j in range(c) if i != j) for s in range(n)]
    return float(np.mean(per))


def test_filter_orthogonality_matches_eq1(rng):
    k = rng.normal(size=(3, 2, 4, 5)).astype("float32")
    np.testing.assert_allclose(float(filter_orthogonality(k)), _numpy_eq1(k), rtol=1e-5)
    np.testing.assert_allclose(float(filter_orthogonality(k, reduction="mean")),
                               _numpy_eq1(k) / (5 * 4 * 6), rtol=1e-5)


def test_filter_orthogonality_hand_values():
    k = np.zeros((1, 1, 2, 3), "float32")
    k[0, 0, :, 0] = [1, 0]
    k[0, 0, :, 1] = [0, 2]              # orthogonal to filter 0
    k[0, 0, :, 2] = [-3, 0]             # anti-parallel to filter 0: |−1|
    assert float(filter_orthogonality(k)) == pytest.approx(2.0)
    # orthogonal filters give 0; a dense (c_in, c_out) kernel counts as 1×1
    assert float(filter_orthogonality(np.eye(4, dtype="float32"))) == pytest.approx(0.0)
    # the sum over positions is inside the absolute value: +1 and −1 cancel
    k2 = np.zeros((1, 2, 1, 2), "float32")
    k2[0, 0, 0] = [1, 1]
    k2[0, 1, 0] = [1, -1]
    assert float(filter_orthogonality(k2)) == pytest.approx(0.0, abs=1e-6)
    assert float(filter_orthogonality(np.ones((3, 3, 4, 1), "float32"))) == 0.0


def test_response_decorrelation_matches_eq2(rng):
    f = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    np.testing.assert_allclose(float(response_decorrelation(f)), _numpy_eq2(f), rtol=1e-5)
    np.testing.assert_allclose(float(response_decorrelation(f, reduction="mean")),
                               _numpy_eq2(f) / 30, rtol=1e-5)
    g = np.zeros((1, 1, 2, 2), "float32")
    g[0, 0, :, 0] = [1, 0]
    g[0, 0, :, 1] = [1, 1]
    assert float(response_decorrelation(g)) == pytest.approx(1.0)   # 2 · cos²(45°)


def test_zero_norms_no_nan_value_or_gradient(rng):
    k = rng.normal(size=(3, 3, 4, 5)).astype("float32")
    k[..., 2] = 0                        # a dead filter
    k[1, 1, :, 3] = 0                    # one zero column
    f = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    f[..., 1] = 0                        # an all-zero channel
    f[1] = 0                             # an all-zero sample
    np.testing.assert_allclose(float(filter_orthogonality(k)), _numpy_eq1(k), rtol=1e-5)
    np.testing.assert_allclose(float(response_decorrelation(f)), _numpy_eq2(f), rtol=1e-5)
    kv, fv = tf.Variable(k), tf.Variable(f)
    with tf.GradientTape() as tape:
        loss = filter_orthogonality(kv) + response_decorrelation(fv)
    gk, gf = tape.gradient(loss, [kv, fv])
    assert np.isfinite(gk.numpy()).all() and np.isfinite(gf.numpy()).all()
    assert np.abs(gk.numpy()).sum() > 0 and np.abs(gf.numpy()).sum() > 0


def test_gradient_reduces_correlation(rng):
    f = tf.Variable(rng.normal(size=(2, 4, 4, 3)).astype("float32") + 1.0)
    before = float(response_decorrelation(f))
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = response_decorrelation(f)
        f.assign_sub(0.5 * tape.gradient(loss, f))
    assert float(response_decorrelation(f)) < 0.5 * before


def test_float16_inputs_give_float32():
    f = np.random.default_rng(1).normal(size=(2, 3, 3, 4)).astype("float16")
    out = response_decorrelation(f)
    assert out.dtype == "float32"
    np.testing.assert_allclose(float(out), _numpy_eq2(f.astype("float32")), rtol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        filter_orthogonality(np.ones((1, 1, 2, 2)), reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        response_decorrelation(np.ones((1, 1, 2, 2)), reduction="none")
    with pytest.raises(ValueError, match="kernel"):
        filter_orthogonality(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="features"):
        response_decorrelation(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="reduction"):
        FilterOrthogonalityRegularizer(reduction="x")


def test_arcface_loss_matches_numpy(rng):
    logits = rng.normal(scale=5, size=(6, 4)).astype("float32")
    labels = np.array([0, 1, 2, 3, 3, 1])
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -logp[np.arange(6), labels].mean()
    assert float(arcface_loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(arcface_loss(labels.reshape(-1, 1), logits.astype("float16"))) == \
        pytest.approx(expected, rel=1e-2)


def test_regularizer_in_conv_and_serialization(rng):
    reg = FilterOrthogonalityRegularizer(weight=100.0)
    conv = keras.layers.Conv2D(6, 3, kernel_regularizer=reg)
    conv.build((None, 8, 8, 4))
    k = np.asarray(conv.kernel)
    assert len(conv.losses) == 1
    np.testing.assert_allclose(float(conv.losses[0]), 100 * _numpy_eq1(k) / (6 * 5 * 9),
                               rtol=1e-5)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(restored, FilterOrthogonalityRegularizer)
    assert restored.get_config() == {"weight": 100.0, "reduction": "mean"}
    assert float(FilterOrthogonalityRegularizer(2.0, "sum")(k)) == \
        pytest.approx(2 * _numpy_eq1(k), rel=1e-5)


def _rd_model(weight=2.0):
    inputs = keras.Input((6, 6, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = ResponseDecorrelation(weight=weight, name="rd")(features)
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, [out, features])


def test_response_decorrelation_layer_adds_loss_in_training_only(rng):
    model = _rd_model()
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    out, features = model(x, training=True)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]),
                               2.0 * _numpy_eq2(np.asarray(features)) / 12, rtol=1e-5)
    model(x, training=False)
    assert len(model.losses) == 0
    model(x)
    assert len(model.losses) == 0
    layer = ResponseDecorrelation()
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), x)   # pass-through


@pytest.mark.filterwarnings("ignore:Gradients do not exist")
def test_response_decorrelation_seen_by_gradient_tape_and_fit(rng):
    model = _rd_model(weight=1.0)
    x = rng.normal(size=(8, 6, 6, 3)).astype("float32")
    conv_kernel = model.get_layer("conv").kernel
    with tf.GradientTape() as tape:
        model(x, training=True)
        loss = tf.add_n(model.losses)
    grad = tape.gradient(loss, conv_kernel)
    assert grad is not None and np.abs(grad.numpy()).sum() > 0
    # model.fit with no compiled loss optimises exactly the added term
    only_rd = keras.Model(model.inputs[0], model.outputs[0])
    only_rd.compile(optimizer=keras.optimizers.SGD(0.0))
    history = only_rd.fit(x, None, batch_size=8, epochs=1, verbose=0)
    features = np.asarray(keras.Model(model.inputs[0], model.outputs[1])(x))
    np.testing.assert_allclose(history.history["loss"][0], _numpy_eq2(features) / 12, rtol=1e-4)
