import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.train.optim import (WarmupSchedule, current_learning_rate, l2_penalty,
                                 make_optimizer)


def _lr(schedule, step):
    return float(schedule(step))


def test_piecewise_with_warmup_against_formula():
    s = WarmupSchedule(0.1, 1000, decay="piecewise", warmup_steps=100, warmup_start=0.01,
                       boundaries=(400, 700), decay_rate=0.1)
    assert _lr(s, 0) == pytest.approx(0.1 * 0.01)
    assert _lr(s, 50) == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))
    assert _lr(s, 100) == pytest.approx(0.1)
    assert _lr(s, 399) == pytest.approx(0.1)
    assert _lr(s, 400) == pytest.approx(0.01)
    assert _lr(s, 699) == pytest.approx(0.01)
    assert _lr(s, 700) == pytest.approx(0.001)
    assert _lr(s, 5000) == pytest.approx(0.001)


def test_cosine_against_formula():
    s = WarmupSchedule(0.2, 1100, decay="cosine", warmup_steps=100, min_lr=0.002)
    assert _lr(s, 0) == pytest.approx(0.0)
    assert _lr(s, 100) == pytest.approx(0.2)
    for t in (100, 350, 600, 1000, 1100, 1500):
        u = min(max((t - 100) / 1000, 0), 1)
        assert _lr(s, t) == pytest.approx(0.002 + 0.198 * 0.5 * (1 + math.cos(math.pi * u)),
                                          rel=1e-5)


def test_constant_and_serialisation_round_trip():
    s = WarmupSchedule(0.05, 10, decay="constant")
    assert _lr(s, 7) == pytest.approx(0.05)
    t = WarmupSchedule(0.1, 500, decay="piecewise", warmup_steps=10, boundaries=[100, 200])
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(t))
    assert back.get_config() == t.get_config()
    assert _lr(back, 150) == pytest.approx(_lr(t, 150))


@pytest.mark.parametrize("kwargs, match", [
    (dict(decay="step"), "unknown lr schedule"),
    (dict(boundaries=(300, 100)), "increasing"),
    (dict(warmup_start=2.0), "warmup_start"),
    (dict(base_lr=-1.0), "positive"),
])
def test_schedule_rejects_bad_settings(kwargs, match):
    args = dict(base_lr=0.1, total_steps=1000)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        WarmupSchedule(**args)


def test_make_optimizer_variants():
    sgd = make_optimizer("sgd", 0.1, momentum=0.9, weight_decay=5e-4)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    assert not sgd.weight_decay  # coupled L2 is added to the loss instead
    adamw = make_optimizer("adamw", 1e-3, weight_decay=0.05)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.05
    lso = make_optimizer("sgd", 0.1, mixed_precision=True)
    assert isinstance(lso, keras.optimizers.LossScaleOptimizer)
    assert current_learning_rate(lso) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lamb", 0.1)


def test_l2_penalty_value_and_gradient():
    w = [tf.Variable(np.array([[1.0, -2.0]], np.float32)), tf.Variable(np.array([3.0], np.float32))]
    with tf.GradientTape() as tape:
        p = l2_penalty(w, 0.1)
    assert float(p) == pytest.approx(0.05 * (1 + 4 + 9))
    grads = tape.gradient(p, w)
    np.testing.assert_allclose(grads[0].numpy(), 0.1 * w[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(grads[1].numpy(), 0.1 * w[1].numpy(), rtol=1e-6)
    assert float(l2_penalty(w, 0.0)) == 0.0
