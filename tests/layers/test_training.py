"""LCD inside keras.Sequential + fit, and inside a MirroredStrategy custom loop."""
import keras
import numpy as np
import tensorflow as tf

from occface.layers import LCD, ResponseDecorrelation
from occface.train.distribute import make_strategy


def test_lcd_in_sequential_fit(rng):
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        LCD(seed=0),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, 32)
    before = [np.array(v) for v in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.allclose(b, np.asarray(v)) for b, v in zip(before, model.trainable_weights))
    # training drops channels, inference is deterministic
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not np.allclose(np.asarray(model(x, training=True)), np.asarray(model(x)))


def test_lcd_in_mirrored_strategy_custom_loop(rng):
    strategy = make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    global_batch = 8
    with strategy.scope():
        inputs = keras.Input((6, 6, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        x = ResponseDecorrelation(weight=1.0)(x)
        dropped = LCD(min_rate=0.5, max_rate=0.5, seed=1)(x)
        out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(dropped))
        model = keras.Model(inputs, [out, dropped])
        optimizer = keras.optimizers.SGD(0.1)

    data = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(32, 6, 6, 3)).astype("float32"), rng.integers(0, 3, 32))
    ).batch(global_batch)
    dist_data = strategy.experimental_distribute_dataset(data)

    def step(images, labels):
        with tf.GradientTape() as tape:
            logits, feats = model(images, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        zero_channels = tf.reduce_sum(tf.cast(
            tf.reduce_all(tf.equal(feats, 0.0), axis=[1, 2]), tf.float32), axis=1)
        return loss, zero_channels

    @tf.function
    def train_step(batch):
        losses, zeros = strategy.run(step, args=batch)
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None),
                strategy.gather(zeros, axis=0))

    before = np.array(model.trainable_variables[0].numpy())
    for batch in dist_data:
        loss, zeros = train_step(batch)
        assert np.isfinite(loss.numpy())
        # every sample on both replicas had exactly round(0.5 · 8) = 4 channels dropped
        # (≥ 4: a ReLU channel may also be all-zero by itself)
        assert zeros.shape == (global_batch,) and (zeros.numpy() >= 4).all()
    assert not np.allclose(before, model.trainable_variables[0].numpy())
