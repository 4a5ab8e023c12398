"""Training the recognizer: ArcFace + spatial regularization in a custom loop under tf.distribute.

:func:`train_recognizer` trains any :func:`occface.models.build_recognizer` variant the way the
LCD paper does (ArcFace m=0.5 s=64, SR weights 100/1, SGD momentum 0.9, weight decay 5e-4) on
one device, several local devices (``MirroredStrategy``) or several machines
(``MultiWorkerMirroredStrategy``, ``TF_CONFIG``). BatchNorm statistics are synchronised over
replicas (``synchronized=True``) when ``sync_batchnorm``; :class:`~occface.train.loop.NonFiniteGuard`
stops the run after ``max_nonfinite_steps`` skipped (non-finite) steps in a row.

The pieces, one module each (all re-exported here):

* :mod:`occface.train.config` -- :class:`RecognizerConfig`, :data:`RESUMABLE_KEYS`,
  :func:`int_list` (no TensorFlow);
* :mod:`occface.train.model` -- :func:`build_model_and_head`, :func:`set_batchnorm_synchronized`;
* :mod:`occface.train.step` -- :func:`make_train_step` (the loss of one step and its
  distribution), :func:`regularization_terms`;
* :mod:`occface.train.data` -- :func:`training_identities`, :func:`training_data`,
  :func:`steps_for_epochs`, :func:`validation_sets`.

``model_dir`` layout::

    config.json            the run's config (+ num_classes); a different config is refused
    checkpoints/ckpt-N.*   model, ArcFace head, optimizer, step, data iterator, RNG states, best
    train/                 TensorBoard: loss terms, lr, accuracy, images/s
    validation/            TensorBoard: validation accuracies
    validation.json        validation curve
    best/model.keras       best validation model (+ best/config.json, best/metrics.json)
    model.keras            final model (embedding model, [0,255] images -> embeddings)
    training.json          run metadata, final metrics, throughput
"""

import json
import logging
import math
import time

import keras
import numpy as np
import tensorflow as tf

from occface.train import distribute as dist
from occface.train.checkpoint import (CheckpointKeeper, check_config, rng_variables,
                                      save_keras_atomic, start_run)
from occface.train.config import RESUMABLE_KEYS, RecognizerConfig, int_list
from occface.train.data import (steps_for_epochs, training_data, training_identities,
                                validation_sets)
from occface.train.loop import NonFiniteGuard, SummaryWriter, TrainingLoop
from occface.train.model import build_model_and_head, set_batchnorm_synchronized
from occface.train.optim import WarmupSchedule, current_learning_rate, make_optimizer
from occface.train.step import make_train_step, regularization_terms
from occface.utils import run_metadata, write_json

__all__ = ["RESUMABLE_KEYS", "RecognizerConfig", "int_list", "build_model_and_head",
           "set_batchnorm_synchronized", "make_train_step", "regularization_terms",
           "training_identities", "training_data", "steps_for_epochs", "validation_sets",
           "train_recognizer"]

log = logging.getLogger(__name__)


def train_recognizer(config, *, dataset=None, num_classes=None, validator=None, progress=None,
                     strategy=None):
    """Train (or resume) a recognizer in ``config.model_dir``.

    Parameters
    ----------
    config : RecognizerConfig or dict
    dataset : tf.data.Dataset, optional
        This worker's training batches ``(images float32 (b,S,S,3) [0,255], labels int32 (b,))``
        with ``b = batch_size / num_workers`` and a static batch dimension; default: built from
        ``config.data_dir`` by :func:`training_data`. Must be checkpointable for exact resume.
    num_classes : int, optional
        Required with ``dataset``.
    validator : callable, optional
        ``validator(model) -> dict`` of accuracies (e.g. a
        :class:`~occface.train.validation.PairsValidator`); default: built from
        ``config.val_folds``. Run every ``validation_interval`` steps and at the end; the best
        mean accuracy is kept as ``best/model.keras``.
    progress : callable, optional
        ``progress(step, total, scalars)`` after each step (a tool's console bar).
    strategy : tf.distribute.Strategy, optional
        Default: ``make_strategy(config.strategy)``.

    Returns
    -------
    dict
        ``{"step", "final": last-interval scalars, "validation": curve, "best": best metrics,
        "images_per_sec", "model_path", "restored_from", "resumed_at_step", "already_trained",
        "model", "head"}``; ``model`` and ``head`` are the trained Keras objects (the rest is
        JSON-serialisable).

    Notes
    -----
    A ``model_dir`` holding a run with the same settings is resumed from its newest checkpoint.
    ``steps`` may differ from the stored run's (:data:`RESUMABLE_KEYS`):

    * larger: training continues from the checkpoint's step to the new ``steps``; the
      learning-rate schedule (warm-up, piecewise boundaries, cosine decay) is the one of a run of
      the new total ``steps``, evaluated at each step (so a cosine schedule continues from where
      the longer run would be at the resume step, not from where the shorter run ended);
      ``training.json`` records ``resumed_at_step``;
    * not above the checkpoint's step: nothing is trained and the stored run is returned with
      ``already_trained=True`` (its ``model.keras`` and ``training.json`` are left as they are).

    Sets the global seeds (``keras.utils.set_random_seed(config.seed)``) and, with
    ``deterministic``, enables TensorFlow op determinism for the rest of the process.
    With ``mixed_precision`` the global Keras dtype policy is ``mixed_float16`` during the call
    and restored afterwards.

    Raises
    ------
    ValueError, FileNotFoundError
        Invalid settings or data (``ConfigMismatchError`` for a ``model_dir`` of another run).
    NonFiniteLossError
        Too many consecutive non-finite steps.
    """
    config, model_dir = start_run(config, RecognizerConfig, dataset, num_classes)
    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _train(config, model_dir, dataset, num_classes, validator, progress, strategy)
    finally:
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy(previous_policy)


def _train(config, model_dir, dataset, num_classes, validator, progress, strategy):
    strategy = strategy or dist.make_strategy(config.strategy)
    if config.xla and dist.is_distributed(strategy):
        raise ValueError("xla is supported on a single device only (strategy 'default')")
    per_worker_batch = dist.per_worker_batch_size(strategy, config.batch_size)
    is_chief = dist.worker_info(strategy)[0]
    worker = dist.worker_index(strategy)

    if dataset is None:
        # Each worker reads its own stream (its own shuffle seed) of per-worker batches.
        dataset, num_classes = training_data(config, per_worker_batch, config.seed + 1000 * worker)
    stored = dict(config.to_dict(), num_classes=int(num_classes))
    resuming = check_config(model_dir, stored, ignore=RESUMABLE_KEYS, write=is_chief)
    if validator is None and config.val_folds:
        sets = validation_sets(config)
        if sets:
            from occface.train.validation import PairsValidator
            validator = PairsValidator(sets, batch_size=config.val_batch_size)

    with strategy.scope():
        model, head = build_model_and_head(config, num_classes)
        if dist.is_distributed(strategy) and config.sync_batchnorm:
            set_batchnorm_synchronized(model, True)
        schedule = WarmupSchedule(config.learning_rate, config.steps, decay=config.lr_schedule,
                                  warmup_steps=config.warmup_steps,
                                  warmup_start=config.warmup_start,
                                  boundaries=config.lr_boundaries,
                                  decay_rate=config.lr_decay_rate, min_lr=config.min_lr)
        optimizer = make_optimizer(config.optimizer, schedule, momentum=config.momentum,
                                   weight_decay=config.weight_decay,
                                   mixed_precision=config.mixed_precision)
        optimizer.build(list(model.trainable_variables) + list(head.trainable_variables))
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    best_var = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_metric")
    inputs = dist.ShardedInput(strategy, dataset)
    keeper = CheckpointKeeper(model_dir, is_chief=is_chief, max_to_keep=config.keep_checkpoints,
                              model=model, head=head, optimizer=optimizer, step=step_var,
                              iterator=inputs.iterator, rng=rng_variables(model), best=best_var)
    restored = keeper.restore()
    start_step = int(step_var.numpy())
    if restored and start_step >= config.steps and (model_dir / "model.keras").is_file():
        keeper.close()  # nothing to train: the caller reports it (no log line here)
        return {"step": start_step, "restored_from": restored, "resumed_at_step": start_step,
                "already_trained": True, "steps_run": 0, "final": {}, "history": [],
                "validation": [], "best": None, "images_per_sec": None, "num_classes": int(num_classes),
                "model_path": str(model_dir / "model.keras"), "model": model, "head": head}
    if restored:
        log.info("resumed from %s at step %d; training to step %d (learning-rate schedule over "
                 "%d steps)", restored, start_step, config.steps, config.steps)
    elif resuming:
        log.info("model_dir %s has a matching config but no checkpoint; starting at step 0",
                 model_dir)

    step_fn = make_train_step(
        strategy, model, head, optimizer, inputs, global_batch_size=config.batch_size,
        l2_weight_decay=config.weight_decay if config.optimizer == "sgd" else 0.0,
        jit_compile=config.xla, check_gradients=not config.mixed_precision)

    train_writer = SummaryWriter(model_dir / "train", enabled=is_chief)
    val_writer = SummaryWriter(model_dir / "validation", enabled=is_chief)
    curve_path = model_dir / "validation.json"
    curve = _load_curve(curve_path, int(step_var.numpy())) if is_chief else []

    def validate(step):
        metrics = validator(model)
        accs = [v for k, v in metrics.items() if k.endswith("_acc")]
        score = float(np.mean(accs)) if accs else float("nan")
        entry = {"step": int(step), **metrics, "mean_acc": score}
        curve.append(entry)
        val_writer.scalars(step, {k: v for k, v in entry.items() if k != "step"})
        log.info("validation at step %d: %s", step,
                 ", ".join(f"{k}={v:.4f}" for k, v in entry.items() if k != "step"))
        write_json(curve_path, curve)
        if math.isfinite(score) and score > float(best_var.numpy()):
            best_var.assign(score)
            _save_model(model, model_dir / "best" / "model.keras", strategy, config)
            write_json(model_dir / "best" / "config.json", stored)
            write_json(model_dir / "best" / "metrics.json", entry)

    hooks = []
    if validator is not None and is_chief:
        def validation_hook(step, _values):
            if step == config.steps or (config.validation_interval
                                        and step % config.validation_interval == 0):
                validate(step)
        hooks.append(validation_hook)

    loop = TrainingLoop(step_fn, config.steps, step_var, keeper,
                        checkpoint_interval=config.checkpoint_interval,
                        summary_interval=config.summary_interval,
                        guard=NonFiniteGuard(config.max_nonfinite_steps),
                        summaries=train_writer,
                        extra_scalars=lambda: {"learning_rate": current_learning_rate(optimizer)},
                        hooks=hooks, progress=progress, images_per_step=config.batch_size)
    started = time.monotonic()
    try:
        loop.run()
    finally:
        keeper.close()
        train_writer.close()
        val_writer.close()
    elapsed = time.monotonic() - started
    done = int(step_var.numpy()) - start_step
    images_per_sec = loop.images_per_sec

    result = {"step": int(step_var.numpy()), "restored_from": restored,
              "resumed_at_step": start_step if restored else None, "already_trained": False,
              "final": loop.history[-1][1] if loop.history else {},
              "history": [{"step": s, **v} for s, v in loop.history],
              "validation": curve,
              "best": max(curve, key=lambda e: e["mean_acc"]) if curve else None,
              "images_per_sec": images_per_sec, "first_step_seconds": loop.first_step_seconds,
              "wall_seconds": elapsed, "steps_run": done,
              "skipped_steps": loop.guard.total_skipped,
              "num_classes": int(num_classes), "num_replicas": strategy.num_replicas_in_sync,
              "model_path": str(model_dir / "model.keras")}
    if is_chief:
        _save_model(model, model_dir / "model.keras", strategy, config)
        write_json(model_dir / "config.json", stored)
        meta = run_metadata(stored)
        meta["result"] = {k: v for k, v in result.items() if k != "history"}
        write_json(model_dir / "training.json", meta)
    result["model"], result["head"] = model, head
    return result


def _save_model(model, path, strategy, config):
    """Save the embedding model; BatchNorm is saved unsynchronised (plain inference/training)."""
    synced = dist.is_distributed(strategy) and config.sync_batchnorm
    if synced:
        set_batchnorm_synchronized(model, False)
    try:
        save_keras_atomic(model, path)
    finally:
        if synced:
            set_batchnorm_synchronized(model, True)


def _load_curve(path, up_to_step):
    """The stored validation curve, truncated to entries at or before ``up_to_step``."""
    if not path.is_file():
        return []
    try:
        curve = json.loads(path.read_text())
    except ValueError:
        log.warning("ignoring unreadable %s", path)
        return []
    return [e for e in curve if int(e.get("step", 0)) <= up_to_step]
