"""build_recognizer / build_mobilefacenet under JAX / PyTorch: forward, one fit step, .keras files.

The cross-backend check loads models saved under TensorFlow (``tf_reference`` fixture) and
compares their inference outputs with TensorFlow's.
"""
import sys

import keras
import numpy as np
import pytest
from keras import ops

from occface.layers import ArcFace
from occface.losses import arcface_loss, filter_orthogonality, response_decorrelation
from occface.models import build_mobilefacenet, build_recognizer
from occface.models.mobilefacenet import GroupedConv2D
from tests_backends.models_spec import TINY_MBF, TINY_RECOGNIZER, build_all


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_occface_modules_import_without_tensorflow():
    import occface.layers  # noqa: F401
    import occface.losses  # noqa: F401
    import occface.models  # noqa: F401
    assert "tensorflow" not in sys.modules


def _train_model(recognizer, classes):
    labels = keras.Input((), dtype="int32")
    head = ArcFace(classes, scale=16.0)
    model = keras.Model([recognizer.input, labels], head([recognizer.output, labels]))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=arcface_loss)
    return model, head


@pytest.mark.parametrize("builder", ["iresnet", "mobilefacenet"])
def test_forward_and_one_training_step(rng, builder):
    if builder == "iresnet":
        rec = build_recognizer(**dict(TINY_RECOGNIZER, variant="cd_sr", lcd_max_rate=0.0))
        conv = rec.get_layer("stage3_block2_conv2")
        sr_at = "stage3_block2_add"
    else:
        rec = build_mobilefacenet(**dict(TINY_MBF, variant="cd_sr", lcd_max_rate=0.0))
        conv = rec.get_layer("stage3_block2_project_conv")
        sr_at = "stage3_block2_add"
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 1], "int32")
    emb = _np(rec(x))
    assert emb.shape == (4, 8) and np.isfinite(emb).all()
    # predict (compiled) and eager sum in different orders: float32 noise, scaled to |emb| ~ 1
    np.testing.assert_allclose(_np(rec.predict(x, verbose=0)), emb, rtol=1e-4, atol=1e-5)

    # model.losses after a training pass: exactly Eq. 1 on the conv and Eq. 2 on the SR tensor
    feats = _np(keras.Model(rec.input, rec.get_layer(sr_at).output)(x, training=True))
    model, head = _train_model(rec, 3)
    logits = model([x, y], training=True)
    reg = sorted(float(_np(v)) for v in model.losses)
    expected = sorted([100.0 * float(_np(filter_orthogonality(conv.kernel, "mean"))),
                       float(_np(response_decorrelation(feats, "mean")))])
    np.testing.assert_allclose(reg, expected, rtol=1e-4)
    # fit's first-step loss = ArcFace CE + both SR terms at the initial weights (LCD rate 0 and
    # batch-statistics BN make the training forward deterministic)
    manual = float(_np(arcface_loss(y, logits))) + sum(reg)
    before = [np.array(_np(v)) for v in model.trainable_weights]
    history = model.fit([x, y], y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(history.history["loss"][0], manual, rtol=1e-4)
    changed = [not np.allclose(b, _np(v)) for b, v in zip(before, model.trainable_weights)]
    assert all(changed[:3]) and np.mean(changed) > 0.9


@pytest.mark.parametrize("builder", [build_recognizer, build_mobilefacenet])
def test_lcd_variant_drops_channels_in_training_only(rng, builder):
    spec = TINY_RECOGNIZER if builder is build_recognizer else TINY_MBF
    rec = builder(**dict(spec, lcd_min_rate=0.5, lcd_max_rate=0.5))
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    to_lcd = keras.Model(rec.input, [rec.get_layer("stage3_lcd").input,
                                      rec.get_layer("stage3_lcd").output])
    before, after = (_np(t) for t in to_lcd(x, training=True))
    zero = np.abs(after).sum(axis=(1, 2)) == 0
    # round(0.5 · C) channels per sample, whole channels, the others unchanged
    assert (zero.sum(axis=1) >= round(0.5 * after.shape[-1])).all()
    keep = np.broadcast_to(~zero[:, None, None], after.shape)
    np.testing.assert_array_equal(after[keep], before[keep])
    before_inf, after_inf = (_np(t) for t in to_lcd(x, training=False))
    np.testing.assert_array_equal(after_inf, before_inf)


def test_grouped_conv_matches_keras_grouped_conv(rng):
    x = rng.normal(size=(2, 9, 9, 8)).astype("float32")
    ref = keras.layers.Conv2D(6, 3, padding="same", groups=2, use_bias=False)
    ref.build(x.shape)
    ours = GroupedConv2D(6, 3, 2, padding="same")
    ours.build(x.shape)
    ours.set_weights(ref.get_weights())
    np.testing.assert_allclose(_np(ours(x)), _np(ref(x)), atol=1e-5)


def test_keras_round_trip_in_this_backend(tmp_path):
    for name, (model, inputs) in build_all(["layers"]).items():
        before = model(inputs, training=False)
        model.save(tmp_path / f"{name}.keras")
        after = keras.saving.load_model(tmp_path / f"{name}.keras")(inputs, training=False)
        for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after)):
            np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["layers", "recognizer", "mobilefacenet"])
def test_saved_under_tensorflow_loads_with_same_outputs(tf_reference, name):
    ref = np.load(tf_reference / "reference.npz")
    inputs = [ref[k] for k in sorted(ref.files) if k.startswith(f"{name}/in")]
    outputs = [ref[k] for k in sorted(ref.files) if k.startswith(f"{name}/out")]
    model = keras.saving.load_model(tf_reference / f"{name}.keras")
    got = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    got = keras.tree.flatten(got)
    assert len(got) == len(outputs)
    for g, want in zip(got, outputs):
        np.testing.assert_allclose(_np(g), want, rtol=1e-4, atol=1e-4)
