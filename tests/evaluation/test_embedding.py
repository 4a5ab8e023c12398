"""load_embedding_model for every saved form, embed_images batching and flip-test."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.evaluation import EmbeddingModel, embed_images, load_embedding_model


@keras.saving.register_keras_serializable(package="occface_test")
class Scale(keras.layers.Layer):
    """A custom layer, so that loading exercises custom-object deserialisation."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def tiny_model(size=16, dim=8, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(4, 3, strides=2)(x)
    x = keras.layers.Flatten()(x)  # position-dependent, so flip changes the embedding
    x = Scale(3.0)(keras.layers.Dense(dim)(x))
    return keras.Model(inp, x)


@pytest.fixture(scope="module")
def model_and_images():
    rng = np.random.default_rng(1)
    return tiny_model(), rng.integers(0, 256, (5, 16, 16, 3)).astype(np.uint8)


def test_keras_file_and_model_dir(tmp_path, model_and_images):
    model, images = model_and_images
    want = model.predict(images.astype(np.float32), verbose=0)
    model.save(tmp_path / "m.keras")
    m = load_embedding_model(tmp_path / "m.keras")
    assert isinstance(m, EmbeddingModel) and m.input_size == (16, 16) and m.kind == "keras"
    np.testing.assert_allclose(m(images), want, rtol=1e-5, atol=1e-5)
    assert m.embedding_size == 8

    # model_dir: best/ preferred, config.json read.
    d = tmp_path / "run"
    (d / "best").mkdir(parents=True)
    other = tiny_model(seed=5)
    other.save(d / "model.keras")
    model.save(d / "best" / "model.keras")
    (d / "config.json").write_text(json.dumps({"depth": 18}))
    m = load_embedding_model(d)
    np.testing.assert_allclose(m(images), want, rtol=1e-5, atol=1e-5)
    assert m.info["config"] == {"depth": 18} and m.info["checkpoint"] == "best/model.keras"
    last = load_embedding_model(d, checkpoint="last")
    np.testing.assert_allclose(last(images), other.predict(images.astype(np.float32), verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_savedmodel_embed_signature(tmp_path, model_and_images):
    model, images = model_and_images

    class Exported(tf.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.uint8)])
        def embed(self, images):
            return {"embedding": self.m(tf.cast(images, tf.float32), training=False)}

    exp = Exported(model)
    tf.saved_model.save(exp, str(tmp_path / "sm"), signatures={"embed": exp.embed})
    m = load_embedding_model(tmp_path / "sm")
    assert m.kind == "savedmodel" and m.input_dtype == "uint8" and m.input_size == (16, 16)
    want = model.predict(images.astype(np.float32), verbose=0)
    np.testing.assert_allclose(m(images), want, rtol=1e-5, atol=1e-5)

    # TF Serving layout (occface.serving.layout): base/<version>/; the highest version is loaded.
    old = Exported(tiny_model(seed=9))
    tf.saved_model.save(old, str(tmp_path / "base" / "2"), signatures={"embed": old.embed})
    tf.saved_model.save(exp, str(tmp_path / "base" / "10"), signatures={"embed": exp.embed})
    m = load_embedding_model(tmp_path / "base")
    assert m.source.endswith("10")
    np.testing.assert_allclose(m(images), want, rtol=1e-5, atol=1e-5)


def test_embed_images_batches_flip_and_resize(model_and_images):
    model, images = model_and_images
    f = lambda x: model.predict(np.asarray(x, np.float32), verbose=0)  # noqa: E731
    seen = []
    got = embed_images(model, images, batch_size=2, progress=seen.append)
    assert seen == [2, 2, 1]
    np.testing.assert_allclose(got, f(images), rtol=1e-5, atol=1e-5)
    flipped = embed_images(model, images, batch_size=3, flip=True)
    np.testing.assert_allclose(flipped, f(images) + f(images[:, :, ::-1]), rtol=1e-4, atol=1e-4)
    assert not np.allclose(flipped, 2 * f(images), atol=1e-3)
    # Larger images are resized to the model's input size.
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(embed_images(model, big), f(images), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="RGB"):
        embed_images(model, images[..., :1])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_embedding_model(tmp_path / "nope.keras")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="unknown model format"):
        load_embedding_model(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="unknown model format"):
        load_embedding_model(tmp_path)
    (tmp_path / "bad.keras").write_text("not a zip")
    with pytest.raises(ValueError, match="cannot load"):
        load_embedding_model(tmp_path / "bad.keras")
    (tmp_path / "run").mkdir()
    tiny_model().save(tmp_path / "run" / "model.keras")
    with pytest.raises(FileNotFoundError, match="best"):
        load_embedding_model(tmp_path / "run", checkpoint="best")

