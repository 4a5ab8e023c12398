"""The training step's SR terms: collected by the layers that produce them, equal to Eq. 1 / Eq. 2."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.losses import filter_orthogonality, response_decorrelation
from occface.train import RecognizerConfig, ShardedInput, make_train_step, regularization_terms
from occface.train.distribute import make_strategy
from occface.train.optim import make_optimizer
from occface.train.recognizer import build_model_and_head, set_batchnorm_synchronized

#: cd_sr with LCD rates 0 (no randomness), depth 18: Eq. 1 on stage3_block2_conv2, Eq. 2 on the
#: output of stage 3's last block; weights other than the paper's so that a swap would show.
CFG = RecognizerConfig(variant="cd_sr", depth=18, width=4, input_size=16, embedding_size=8,
                       lcd_min_rate=0.0, lcd_max_rate=0.0, sr_filter_weight=3.0,
                       sr_response_weight=0.5)
BATCH = 8


@pytest.mark.parametrize("replicas", [1, 2])
def test_reported_sr_terms_are_eq1_and_eq2_computed_directly(replicas):
    strategy = (tf.distribute.get_strategy() if replicas == 1
                else make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]))
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH, 16, 16, 3)).astype(np.float32)
    y = (np.arange(BATCH) % 4).astype(np.int32)
    with strategy.scope():
        model, head = build_model_and_head(CFG, 4)
        if replicas > 1:
            set_batchnorm_synchronized(model, True)
        optimizer = make_optimizer("sgd", 0.01, momentum=0.9)
        optimizer.build(model.trainable_variables + head.trainable_variables)

    # Eq. 1 on the regularized kernel; Eq. 2 on each replica's slice of the features that enter
    # the ResponseDecorrelation layer (training-mode BatchNorm: synchronised = whole-batch
    # statistics), averaged over the replicas -- both before the step's update.
    kernel = model.get_layer("stage3_block2_conv2").kernel
    eq1 = CFG.sr_filter_weight * float(filter_orthogonality(kernel, CFG.sr_reduction))
    features = keras.Model(model.inputs[0], model.get_layer("stage3_sr_response").input)(
        x, training=True)
    eq2 = np.mean([CFG.sr_response_weight * float(response_decorrelation(part, CFG.sr_reduction))
                   for part in np.split(np.asarray(features), replicas)])

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH, drop_remainder=True)
    step = make_train_step(strategy, model, head, optimizer, ShardedInput(strategy, data),
                           global_batch_size=BATCH)
    out = {k: float(v) for k, v in step().items()}
    assert eq1 > 0 and eq2 > 0
    assert out["sr_filter"] == pytest.approx(eq1, rel=1e-5)
    assert out["sr_response"] == pytest.approx(eq2, rel=1e-4)
    assert out["loss"] == pytest.approx(out["arcface"] + eq1 + eq2, rel=1e-5)


def test_terms_of_other_layers_are_refused_not_dropped():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1))
    model = keras.Model(inputs, dense(inputs))
    model(np.ones((2, 4), np.float32), training=True)
    with pytest.raises(ValueError, match="Eq. 1 regularizer only.*L2"):
        regularization_terms(model)

    class Extra(keras.layers.Layer):
        def call(self, x):
            self.add_loss(keras.ops.sum(x))
            return x

    model = keras.Model(inputs, Extra()(inputs))
    model(np.ones((2, 4), np.float32), training=True)
    with pytest.raises(ValueError, match="1 term.*neither Eq. 1"):
        regularization_terms(model)


def test_a_model_without_sr_layers_has_zero_terms():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model(np.ones((2, 4), np.float32), training=True)
    assert [float(t) for t in regularization_terms(model)] == [0.0, 0.0]
