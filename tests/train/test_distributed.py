"""The recognizer's training step under tf.distribute (two logical CPU devices)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.train import RecognizerConfig, ShardedInput, apply_if_finite, make_train_step
from occface.train.distribute import all_reduce_sum, make_strategy
from occface.train.optim import make_optimizer
from occface.train.recognizer import build_model_and_head, set_batchnorm_synchronized

DEVICES = ["/cpu:0", "/cpu:1"]


@pytest.fixture(scope="module")
def mirrored():
    return make_strategy("mirrored", devices=DEVICES)


def test_sharded_input_splits_each_batch_in_replica_order(mirrored):
    x = np.arange(16, dtype=np.float32).reshape(4, 4)  # one batch of 4 rows
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4, drop_remainder=True).map(
        lambda b: (b, tf.constant(7)))
    inputs = ShardedInput(mirrored, ds)
    assert inputs.per_replica_batch == 2

    @tf.function
    def step():
        return mirrored.run(lambda batch: batch, args=(inputs.next(),))

    rows, scalar = step()
    r0, r1 = mirrored.experimental_local_results(rows)
    np.testing.assert_array_equal(r0.numpy(), x[:2])
    np.testing.assert_array_equal(r1.numpy(), x[2:])
    assert all(int(s) == 7 for s in mirrored.experimental_local_results(scalar))
    with pytest.raises(ValueError, match="not divisible"):
        ShardedInput(mirrored, tf.data.Dataset.from_tensor_slices(x).batch(3, drop_remainder=True))
    with pytest.raises(ValueError, match="static batch"):
        ShardedInput(mirrored, tf.data.Dataset.from_tensor_slices(x).batch(3))


def test_apply_if_finite_uses_each_replicas_arguments(mirrored):
    with mirrored.scope():
        total = tf.Variable(0.0, aggregation=tf.VariableAggregation.SUM)
        skipped = tf.Variable(0.0, aggregation=tf.VariableAggregation.SUM)

    def replica(value):
        rid = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        mine = value + rid  # differs per replica: 10 and 11
        (s,) = all_reduce_sum([mine])
        apply_if_finite(tf.math.is_finite(s), lambda m: total.assign_add(m), (mine,),
                        lambda m: skipped.assign_add(tf.ones_like(m)), (mine,))

    @tf.function
    def run(value):
        mirrored.run(replica, args=(value,))

    run(tf.constant(10.0))
    assert float(total.numpy()) == pytest.approx(21.0)  # 10 + 11: each replica its own value
    run(tf.constant(float("nan")))
    assert float(total.numpy()) == pytest.approx(21.0) and float(skipped.numpy()) == 2.0


def _data(nan_batch=None):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (48, 16, 16, 3)).astype(np.float32)
    if nan_batch is not None:
        x[nan_batch * 8:(nan_batch + 1) * 8] = np.nan
    y = (np.arange(48) % 6).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)


def _train(strategy, steps, nan_batch=None):
    """A cd_sr recognizer (LCD rates 0: no randomness; both SR terms active)."""
    keras.utils.set_random_seed(1)
    cfg = RecognizerConfig(variant="cd_sr", depth=18, width=4, input_size=16, embedding_size=8,
                           lcd_min_rate=0.0, lcd_max_rate=0.0)
    with strategy.scope():
        model, head = build_model_and_head(cfg, 6)
        if strategy.num_replicas_in_sync > 1:
            set_batchnorm_synchronized(model, True)
        opt = make_optimizer("sgd", 0.05, momentum=0.9)
        opt.build(model.trainable_variables + head.trainable_variables)
    step = make_train_step(strategy, model, head, opt, ShardedInput(strategy, _data(nan_batch)),
                           global_batch_size=8, l2_weight_decay=5e-4)
    outs, snapshots = [], []
    for _ in range(steps):
        outs.append({k: float(v) for k, v in step().items()})
        snapshots.append([v.numpy().copy() for v in model.weights + head.weights])
    return outs, snapshots, opt


def test_mirrored_matches_single_device_and_skips_nan_steps(mirrored):
    # Global batch 8: one device with 8 vs two replicas with 4 each (synchronised BatchNorm).
    # Batch 3 (0-based) is all NaN: that step is skipped on every replica.
    single, w_single, opt_single = _train(tf.distribute.get_strategy(), 5, nan_batch=3)
    multi, w_multi, opt_multi = _train(mirrored, 5, nan_batch=3)
    for a, b in zip(single, multi):
        for key in ("loss", "arcface", "sr_filter", "sr_response", "weight_decay", "accuracy"):
            assert a[key] == pytest.approx(b[key], rel=2e-4, abs=1e-5) or not np.isfinite(a[key])
    assert single[0]["sr_filter"] > 0 and single[0]["sr_response"] > 0
    # The distributed updates equal the single-device ones up to float summation order: the
    # difference between the two final weight vectors is < 0.5% of how far training moved them.
    flat = lambda ws: np.concatenate([w.ravel() for w in ws])  # noqa: E731
    moved = flat(w_single[-1]) - flat(w_single[0])
    assert np.linalg.norm(moved) > 1e-2
    gap = flat(w_multi[-1]) - flat(w_single[-1])
    assert np.linalg.norm(gap) < 5e-3 * np.linalg.norm(moved), np.linalg.norm(gap)
    # Initial weights (after the first update's forward) agree to float precision.
    np.testing.assert_allclose(flat(w_multi[0]), flat(w_single[0]), rtol=1e-4, atol=1e-5)
    for outs, snaps, opt in ((single, w_single, opt_single), (multi, w_multi, opt_multi)):
        assert [o["finite"] for o in outs] == [1.0, 1.0, 1.0, 0.0, 1.0]
        # ... but not in the NaN step: weights, BatchNorm moving statistics, optimizer iterations.
        for a, b in zip(snaps[2], snaps[3]):
            np.testing.assert_array_equal(a, b)
        assert all(np.isfinite(w).all() for w in snaps[4])
        assert int(opt.iterations.numpy()) == 4


def test_xla_is_refused_under_mirrored_and_works_on_one_device(mirrored):
    cfg = RecognizerConfig(variant="baseline", depth=18, width=4, input_size=16,
                           embedding_size=8, strategy="mirrored", xla=True)
    with pytest.raises(ValueError, match="single device"):
        cfg.validate()
    with mirrored.scope():
        model, head = build_model_and_head(cfg, 6)
        opt = make_optimizer("sgd", 0.05)
    with pytest.raises(ValueError, match="single device"):
        make_train_step(mirrored, model, head, opt, ShardedInput(mirrored, _data()),
                        global_batch_size=8, jit_compile=True)


def _tiny_model():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(4, 3, strides=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, dtype="float32")(x)
    return keras.Model(inp, x)


def _tiny_run(strategy, steps=3, jit=False, mixed=False):
    from occface.layers import ArcFace
    keras.utils.set_random_seed(3)
    policy = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = _tiny_model()
            if strategy.num_replicas_in_sync > 1:
                set_batchnorm_synchronized(model, True)
            head = ArcFace(6, name="arcface")
            head.build([(None, 8), (None,)])
            opt = make_optimizer("sgd", 0.05, mixed_precision=mixed)
            opt.build(model.trainable_variables + head.trainable_variables)
        step = make_train_step(strategy, model, head, opt, ShardedInput(strategy, _data()),
                               global_batch_size=8, jit_compile=jit, check_gradients=not mixed)
        before = [v.numpy().copy() for v in model.trainable_variables]
        losses = [float(step()["loss"]) for _ in range(steps)]
        moved = max(float(np.abs(a - v.numpy()).max())
                    for a, v in zip(before, model.trainable_variables))
        return losses, opt, moved
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_xla_step_matches_plain_step():
    plain, _, _ = _tiny_run(tf.distribute.get_strategy())
    xla, _, _ = _tiny_run(tf.distribute.get_strategy(), jit=True)
    np.testing.assert_allclose(xla, plain, rtol=1e-3)


def test_mixed_precision_with_loss_scaling_under_mirrored(mirrored):
    plain, _, _ = _tiny_run(mirrored, steps=1)
    mixed, opt, moved = _tiny_run(mirrored, steps=4, mixed=True)
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(mixed))
    # Same initial weights: the float16 forward pass gives the float32 loss within fp16 error.
    assert mixed[0] == pytest.approx(plain[0], rel=0.02)
    # Dynamic loss scaling may skip overflowing steps itself, but updates do get applied.
    assert int(opt.iterations.numpy()) >= 1 and moved > 0
