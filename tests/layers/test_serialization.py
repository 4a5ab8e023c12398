"""get_config/from_config, .keras save/load and jit_compile for every occface layer."""
import keras
import numpy as np
import pytest

from occface.layers import (LCD, SAM, ArcFace, Cutout, DropBlock, ResponseDecorrelation,
                            WeightedChannelDropout)
from occface.losses import FilterOrthogonalityRegularizer, arcface_loss

LAYERS = [
    LCD(min_rate=0.1, max_rate=0.4, seed=3),
    SAM(reduction=2, initial_attention=0.9),
    SAM(reduction=4, return_attention=True),
    DropBlock(block_size=2, rate=0.2, seed=1),
    WeightedChannelDropout(wrs_ratio=0.75, q=0.8, rescale=False, seed=2),
    Cutout(size=3, seed=4),
    ResponseDecorrelation(weight=0.5, reduction="sum"),
    ArcFace(7, margin=0.3, scale=16.0, easy_margin=True),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda l: type(l).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    assert keras.saving.get_registered_name(type(layer)) == f"occface>{type(layer).__name__}"


def _small_model():
    images = keras.Input((8, 8, 3), name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    x = Cutout(size=3, seed=0)(images)
    x = keras.layers.Conv2D(8, 3, padding="same",
                            kernel_regularizer=FilterOrthogonalityRegularizer(10.0))(x)
    x = ResponseDecorrelation(weight=0.5)(x)
    x = LCD(seed=1)(x)
    x = DropBlock(block_size=2, rate=0.1, seed=2)(x)
    x = WeightedChannelDropout(seed=3)(x)
    x, theta = SAM(reduction=2, return_attention=True)(x)
    emb = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    logits = ArcFace(5, scale=8.0)([emb, labels])
    return keras.Model([images, labels], [logits, emb, theta])


def test_keras_file_round_trip(tmp_path, rng):
    model = _small_model()
    for v in model.weights:                      # non-default values everywhere
        if v.trainable:
            v.assign(rng.normal(scale=0.3, size=v.shape).astype("float32"))
    x = [rng.uniform(0, 255, (3, 8, 8, 3)).astype("float32"), np.array([0, 2, 4])]
    before = [np.asarray(t) for t in model(x, training=False)]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = [np.asarray(t) for t in loaded(x, training=False)]
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    loaded(x, training=True)
    assert len(loaded.losses) == 2              # kernel regularizer + response decorrelation


def test_jit_compiled_training(rng):
    model = _small_model()
    train = keras.Model(model.inputs, model.outputs[0])
    train.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=lambda y, logits: arcface_loss(y, logits), jit_compile=True)
    x = rng.uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 5, 8)
    history = train.fit([x, y], y, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert train.jit_compile
