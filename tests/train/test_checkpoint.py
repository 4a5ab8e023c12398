import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.train.checkpoint import (CheckpointKeeper, ConfigMismatchError, check_config,
                                      rng_variables, save_keras_atomic)


def test_check_config_writes_accepts_and_refuses(tmp_path):
    cfg = {"depth": 18, "width": 16, "folds": (0, 1), "summary_interval": 10}
    assert check_config(tmp_path, cfg) is False
    assert json.loads((tmp_path / "config.json").read_text())["folds"] == [0, 1]
    assert check_config(tmp_path, dict(cfg)) is True
    # A key in `ignore` may differ (e.g. logging intervals) ...
    assert check_config(tmp_path, dict(cfg, summary_interval=99), ignore=["summary_interval"])
    # ... any other difference is refused, naming the key and both values.
    with pytest.raises(ConfigMismatchError, match=r"width: stored 16 != now 32") as err:
        check_config(tmp_path, dict(cfg, width=32))
    assert "new --model_dir" in str(err.value)
    with pytest.raises(ConfigMismatchError, match="extra"):
        check_config(tmp_path, dict(cfg, extra=1))
    assert isinstance(err.value, ValueError)


def test_check_config_refuses_checkpoints_without_config(tmp_path):
    v = tf.Variable(1.0)
    tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(tmp_path / "checkpoints"),
                               max_to_keep=1).save()
    with pytest.raises(ConfigMismatchError, match="no config.json"):
        check_config(tmp_path, {"a": 1})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{broken")
    with pytest.raises(ConfigMismatchError, match="not valid JSON"):
        check_config(tmp_path / "other", {"a": 1})


def _state():
    return tf.Variable(0, dtype=tf.int64), tf.Variable(np.zeros(3, np.float32))


def test_keeper_keeps_n_and_restores_newest(tmp_path):
    step, w = _state()
    keeper = CheckpointKeeper(tmp_path, max_to_keep=2, step=step, w=w)
    assert keeper.restore() is None
    for i in range(1, 5):
        step.assign(i)
        w.assign(np.full(3, i, np.float32))
        keeper.save(i)
    assert [os.path.basename(p) for p in keeper.checkpoints] == ["ckpt-3", "ckpt-4"]
    assert not (tmp_path / "checkpoints" / "ckpt-2.index").exists()
    step2, w2 = _state()
    path = CheckpointKeeper(tmp_path, max_to_keep=2, step=step2, w=w2).restore()
    assert path.endswith("ckpt-4") and int(step2.numpy()) == 4
    np.testing.assert_array_equal(w2.numpy(), [4, 4, 4])


def test_keeper_falls_back_when_newest_is_unreadable(tmp_path, caplog):
    step, w = _state()
    keeper = CheckpointKeeper(tmp_path, max_to_keep=3, step=step, w=w)
    for i in (1, 2):
        step.assign(i)
        w.assign(np.full(3, i, np.float32))
        keeper.save(i)
    # A torn write of the newest data file (what a filesystem without atomic rename might leave).
    data = next((tmp_path / "checkpoints").glob("ckpt-2.data-*"))
    data.write_bytes(data.read_bytes()[:5])
    step2, w2 = _state()
    with caplog.at_level(logging.WARNING, logger="occface.train.checkpoint"):
        path = CheckpointKeeper(tmp_path, step=step2, w=w2).restore()
    assert path.endswith("ckpt-1") and int(step2.numpy()) == 1
    np.testing.assert_array_equal(w2.numpy(), [1, 1, 1])
    assert "unreadable" in caplog.text
    # Nothing readable at all: a clear error, not a silent fresh start.
    data1 = next((tmp_path / "checkpoints").glob("ckpt-1.data-*"))
    data1.write_bytes(b"")
    with pytest.raises(RuntimeError, match="no readable checkpoint"):
        CheckpointKeeper(tmp_path, step=step2, w=w2).restore()


def test_rng_variables_are_seed_states_and_round_trip(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dropout(0.5, seed=3)(keras.layers.Dense(4)(inp)))
    rng = rng_variables(model)
    assert len(rng) == 1 and len(model.weights) == 2
    x = tf.ones((2, 4))
    model(x, training=True)
    saved = rng[0].numpy().copy()
    keeper = CheckpointKeeper(tmp_path, rng=rng)
    keeper.save(1)
    first = model(x, training=True).numpy()
    model(x, training=True)  # advances the generator
    keeper.restore()
    np.testing.assert_array_equal(rng[0].numpy(), saved)
    np.testing.assert_array_equal(model(x, training=True).numpy(), first)


def test_save_keras_atomic_keeps_old_file_on_failure(tmp_path, monkeypatch):
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    path = tmp_path / "m.keras"
    save_keras_atomic(model, path)
    before = path.read_bytes()

    def broken_save(filepath, *a, **k):
        with open(filepath, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError):
        save_keras_atomic(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
    assert keras.models.load_model(path).output_shape == (None, 2)
