"""train_recognizer end to end on tiny models and synthetic data (in-process)."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from occface.train import (ConfigMismatchError, NonFiniteLossError, PairSet, PairsValidator,
                           RecognizerConfig, train_recognizer)
from occface.train.distribute import make_strategy

CLASSES = 6


def _dataset(batch=8, nan_steps=(), seed=0):
    rng = np.random.default_rng(5)
    base = rng.uniform(0, 255, (CLASSES, 16, 16, 3))
    labels = np.arange(48) % CLASSES
    images = np.clip(base[labels] + rng.normal(0, 20, (48, 16, 16, 3)), 0, 255).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    ds = ds.shuffle(48, seed=seed).repeat().batch(batch, drop_remainder=True).enumerate()
    bad = tf.constant(sorted(nan_steps) or [-1], tf.int64)

    def poison(i, b):
        x, y = b
        is_bad = tf.reduce_any(tf.equal(bad, i + 1))  # step numbers are 1-based
        return tf.where(is_bad, tf.fill(tf.shape(x), float("nan")), x), y
    return ds.map(poison), base


def _validator(base):
    rng = np.random.default_rng(9)
    n = 40
    ids_a = rng.integers(0, CLASSES, n)
    same = np.arange(n) % 2 == 0
    ids_b = np.where(same, ids_a, (ids_a + 1 + rng.integers(0, CLASSES - 1, n)) % CLASSES)
    noisy = lambda ids: np.clip(base[ids] + rng.normal(0, 20, (n, 16, 16, 3)), 0, 255)  # noqa
    occluded = noisy(ids_b)
    occluded[:, 8:] = 0
    sets = {"clean": PairSet(noisy(ids_a).astype(np.uint8), noisy(ids_b).astype(np.uint8), same,
                             np.arange(n) % 4),
            "block": PairSet(noisy(ids_a).astype(np.uint8), occluded.astype(np.uint8), same,
                             np.arange(n) % 4)}
    return PairsValidator(sets, batch_size=32)


def _config(model_dir, **kw):
    args = dict(model_dir=str(model_dir), variant="lcd", depth=18, width=4, input_size=16,
                embedding_size=8, batch_size=8, steps=6, learning_rate=0.02, warmup_steps=2,
                lr_boundaries=(4,), checkpoint_interval=2, summary_interval=2,
                validation_interval=3, seed=0)
    args.update(kw)
    return RecognizerConfig(**args)


def _tags(logdir):
    tags = set()
    for path in glob.glob(os.path.join(str(logdir), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_train_validate_save_and_resume(tmp_path):
    from occface.evaluation import load_embedding_model
    ds, base = _dataset()
    cfg = _config(tmp_path / "run")
    result = train_recognizer(cfg, dataset=ds, num_classes=CLASSES, validator=_validator(base))
    run = tmp_path / "run"
    assert result["step"] == 6 and result["restored_from"] is None
    assert result["images_per_sec"] > 0 and result["num_replicas"] == 1
    # Validation at steps 3 and 6 (interval and end), both sets, the best one kept.
    curve = json.loads((run / "validation.json").read_text())
    assert [e["step"] for e in curve] == [3, 6]
    assert {"clean_acc", "block_acc", "mean_acc"} <= set(curve[0])
    best = json.loads((run / "best" / "metrics.json").read_text())
    assert best["mean_acc"] == max(e["mean_acc"] for e in curve)
    # The config, the final and best models, the run record.
    stored = json.loads((run / "config.json").read_text())
    assert stored["depth"] == 18 and stored["num_classes"] == CLASSES
    assert stored["lr_boundaries"] == [4]
    assert json.loads((run / "best" / "config.json").read_text()) == stored
    record = json.loads((run / "training.json").read_text())
    assert record["result"]["step"] == 6 and record["settings"]["variant"] == "lcd"
    for which in ("last", "best"):
        m = load_embedding_model(run, checkpoint=which)
        emb = m(np.zeros((2, 16, 16, 3), np.uint8))
        assert emb.shape == (2, 8) and np.isfinite(emb).all()
    # The saved model is the trained one.
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(load_embedding_model(run, checkpoint="last")(x),
                               result["model"](x, training=False).numpy(), rtol=1e-4, atol=1e-5)
    # TensorBoard: every loss term, lr, accuracy, throughput; validation accuracies.
    assert {"loss", "arcface", "sr_filter", "sr_response", "weight_decay", "accuracy",
            "learning_rate", "images_per_sec", "skipped_steps"} <= _tags(run / "train")
    assert {"clean_acc", "block_acc", "mean_acc"} <= _tags(run / "validation")
    assert result["final"]["sr_filter"] > 0 and result["final"]["sr_response"] > 0
    # Same config again: resumes from the final checkpoint, nothing left to do.
    again = train_recognizer(cfg, dataset=_dataset()[0], num_classes=CLASSES)
    assert again["restored_from"].endswith("ckpt-6") and again["steps_run"] == 0


def test_different_config_in_same_model_dir_is_refused(tmp_path):
    ds, _ = _dataset()
    cfg = _config(tmp_path / "run", steps=2, validation_interval=0, checkpoint_interval=1)
    train_recognizer(cfg, dataset=ds, num_classes=CLASSES)
    before = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    with pytest.raises(ConfigMismatchError, match=r"width: stored 4 != now 8"):
        train_recognizer(_config(tmp_path / "run", steps=2, width=8), dataset=ds,
                         num_classes=CLASSES)
    with pytest.raises(ConfigMismatchError, match="num_classes"):
        train_recognizer(cfg, dataset=ds, num_classes=CLASSES + 1)
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == before
    # Intervals may change between a run and its resumption.
    again = train_recognizer(_config(tmp_path / "run", steps=2, validation_interval=0,
                                     checkpoint_interval=5, summary_interval=7),
                             dataset=ds, num_classes=CLASSES)
    assert again["restored_from"].endswith("ckpt-2")


def test_nonfinite_steps_are_skipped_then_stop_the_run(tmp_path):
    # Step 3 is NaN (skipped, training goes on); steps 5-7 are NaN: stop after 3 in a row.
    ds, _ = _dataset(nan_steps=(3, 5, 6, 7))
    cfg = _config(tmp_path / "run", steps=10, checkpoint_interval=1, validation_interval=0,
                  max_nonfinite_steps=3, variant="cd_sr")
    with pytest.raises(NonFiniteLossError, match=r"step 7: 3 consecutive .*ckpt-4"):
        train_recognizer(cfg, dataset=ds, num_classes=CLASSES)
    ckpt_dir = tmp_path / "run" / "checkpoints"
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    assert latest.endswith("ckpt-4")
    reader = tf.train.load_checkpoint(latest)
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 4
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "head/"))]
    assert names and all(np.isfinite(reader.get_tensor(n)).all() for n in names)
    # 3 applied updates in 4 steps (step 3 skipped): the optimizer's iteration count says so.
    iters = [n for n in reader.get_variable_to_shape_map() if "iteration" in n]
    assert iters and int(reader.get_tensor(iters[0])) == 3
    assert not (tmp_path / "run" / "model.keras").exists()


def test_config_validation_messages(tmp_path):
    with pytest.raises(ValueError, match="variant must be one of"):
        RecognizerConfig(variant="resnet").validate()
    with pytest.raises(ValueError, match="overlap"):
        RecognizerConfig(lfw_pairs="p.txt", train_folds="0-7", val_folds="7-9").validate()
    with pytest.raises(ValueError, match="unknown recognizer training settings: bogus"):
        RecognizerConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="model_dir is required"):
        train_recognizer(RecognizerConfig())
    with pytest.raises(ValueError, match="ranges like 0-6"):
        RecognizerConfig(train_folds="0-x")
    with pytest.raises(ValueError, match="not divisible"):
        train_recognizer(RecognizerConfig(model_dir=str(tmp_path / "x"), batch_size=7,
                                          strategy="mirrored"),
                         dataset=_dataset()[0], num_classes=CLASSES,
                         strategy=make_strategy("mirrored", ["/cpu:0", "/cpu:1"]))


def test_steps_for_epochs_counts_training_images(tmp_path):
    import cv2

    from occface.train.recognizer import steps_for_epochs
    for i in range(3):
        (tmp_path / f"p{i}").mkdir()
        for j in range(5):
            cv2.imwrite(str(tmp_path / f"p{i}" / f"p{i}_{j + 1:04d}.png"),
                        np.full((20, 20, 3), 40 * j, np.uint8))
    cfg = RecognizerConfig(data_dir=str(tmp_path), batch_size=4)
    assert steps_for_epochs(cfg, 1) == 4  # ceil(15 / 4)
    assert steps_for_epochs(cfg, 2.5) == 10  # ceil(37.5 / 4)
    with pytest.raises(ValueError, match="positive"):
        steps_for_epochs(cfg, 0)
    with pytest.raises(FileNotFoundError):
        steps_for_epochs(RecognizerConfig(data_dir=str(tmp_path / "missing")), 1)
