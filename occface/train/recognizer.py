"""Training the recognizer: ArcFace + spatial regularization in a custom loop under tf.distribute.

:func:`train_recognizer` trains any :func:`occface.models.build_recognizer` variant the way the
LCD paper does (ArcFace m=0.5 s=64, SR weights 100/1, SGD momentum 0.9, weight decay 5e-4) on
one device, several local devices (``MirroredStrategy``) or several machines
(``MultiWorkerMirroredStrategy``, ``TF_CONFIG``).

One training step (:func:`make_train_step`), per replica holding ``b = B / R`` of the global
batch ``B`` over ``R`` replicas:

``loss_r = Σ_n CE_n / B + (SR-filter + SR-response + L2) / R``

so that the all-reduced *sum* of the replicas' gradients (what the optimizer applies) is the
gradient of ``mean_n CE_n + SR + L2`` over the global batch — exactly the single-device loss.
The Eq. 2 term is a per-replica batch mean, so its replica average is the global mean. BatchNorm
statistics are synchronised over replicas (``synchronized=True``) when ``sync_batchnorm``.

Keras keeps ``add_loss`` terms on the (shared) layer objects, so under ``MirroredStrategy`` every
replica's ``model.losses`` also lists the other replicas' Eq. 2 terms;
:func:`regularization_terms` keeps only the terms on the replica's own device.

A step whose all-reduced loss or gradients are not finite is skipped on every replica (no
optimizer update, BatchNorm moving statistics restored); :class:`~occface.train.loop.NonFiniteGuard`
stops the run after ``max_nonfinite_steps`` in a row.

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

import dataclasses
import json
import logging
import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from occface.train import distribute as dist
from occface.train.checkpoint import (CheckpointKeeper, check_config, rng_variables,
                                      save_keras_atomic)
from occface.train.loop import NonFiniteGuard, SummaryWriter, TrainingLoop
from occface.train.optim import (OPTIMIZERS, SCHEDULES, WarmupSchedule, current_learning_rate,
                                 l2_penalty, make_optimizer)
from occface.utils import run_metadata, write_json

log = logging.getLogger(__name__)

# Keys that may change between a run and its resumption without changing the result.
RESUMABLE_KEYS = ("checkpoint_interval", "keep_checkpoints", "summary_interval",
                  "max_nonfinite_steps", "validation_interval", "val_batch_size", "model_dir")


@dataclasses.dataclass
class RecognizerConfig:
    """Every setting of a recognizer training run (stored as ``model_dir/config.json``).

    Data
        ``data_dir``: training source for :func:`occface.data.training_dataset` (identity-per-folder
        tree or MS1M-style ``.rec``); ``input_size``; ``augment``; ``train_occlusion`` (synthetic
        occlusion on training images, ``""`` = none); ``lfw_pairs`` + ``train_folds`` +
        ``min_images_per_identity``: restrict training to the identities of these ``pairs.txt``
        folds (0-based) so validation on the other folds is identity-disjoint.
    Model
        ``variant``, ``depth``, ``width``, ``embedding_size``, ``dropout``, ``lcd_stage``,
        ``sam_stage``, ``lcd_min_rate``, ``lcd_max_rate``, ``sr_filter_weight``,
        ``sr_response_weight``, ``sr_reduction`` (see :func:`occface.models.build_recognizer`);
        ``arcface_margin``, ``arcface_scale``.
    Optimisation
        ``optimizer`` (sgd|adamw), ``learning_rate``, ``momentum``, ``weight_decay`` (SGD: coupled
        L2 as in PyTorch/MXNet; AdamW: decoupled), ``lr_schedule`` (piecewise|cosine|constant),
        ``lr_boundaries`` (steps), ``lr_decay_rate``, ``warmup_steps``, ``warmup_start``,
        ``min_lr``, ``batch_size`` (global), ``steps``.
    System
        ``strategy`` (default|mirrored|multi_worker), ``mixed_precision``, ``xla`` (single device
        only), ``sync_batchnorm``, ``seed``, ``deterministic`` (``enable_op_determinism``).
    Bookkeeping
        ``model_dir``, ``checkpoint_interval``, ``keep_checkpoints``, ``summary_interval``,
        ``max_nonfinite_steps``, ``validation_interval`` (0 = only at the end when validation
        data is given), ``val_pairs`` (``pairs.txt``), ``val_data_dir`` (aligned images; default
        ``data_dir``), ``val_folds``, ``val_occlusions``, ``val_batch_size``.
    """

    # data
    data_dir: str = ""
    input_size: int = 112
    augment: bool = True
    train_occlusion: str = ""
    lfw_pairs: str = ""
    train_folds: tuple = ()
    min_images_per_identity: int = 1
    # model
    variant: str = "lcd"
    depth: int = 50
    width: int = 64
    embedding_size: int = 512
    dropout: float = 0.0
    lcd_stage: int = 3
    sam_stage: int = 4
    lcd_min_rate: float = 0.0
    lcd_max_rate: float = 0.6
    sr_filter_weight: float = 100.0
    sr_response_weight: float = 1.0
    sr_reduction: str = "mean"
    arcface_margin: float = 0.5
    arcface_scale: float = 64.0
    # optimisation
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "piecewise"
    lr_boundaries: tuple = ()
    lr_decay_rate: float = 0.1
    warmup_steps: int = 0
    warmup_start: float = 0.0
    min_lr: float = 0.0
    batch_size: int = 128
    steps: int = 1000
    # system
    strategy: str = "default"
    mixed_precision: bool = False
    xla: bool = False
    sync_batchnorm: bool = True
    seed: int = 0
    deterministic: bool = False
    # bookkeeping
    model_dir: str = ""
    checkpoint_interval: int = 1000
    keep_checkpoints: int = 3
    summary_interval: int = 100
    max_nonfinite_steps: int = 20
    validation_interval: int = 0
    val_pairs: str = ""
    val_data_dir: str = ""
    val_folds: tuple = ()
    val_occlusions: tuple = ("none",)
    val_batch_size: int = 64

    def __post_init__(self):
        for key in ("train_folds", "lr_boundaries", "val_folds", "val_occlusions"):
            value = getattr(self, key)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            setattr(self, key, tuple(value))
        self.train_folds = int_list(self.train_folds, "train_folds")
        self.val_folds = int_list(self.val_folds, "val_folds")
        self.lr_boundaries = int_list(self.lr_boundaries, "lr_boundaries", ranges=False)

    def to_dict(self):
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown recognizer training settings: {', '.join(unknown)}")
        return cls(**d)

    def validate(self):
        """Raise ``ValueError`` naming the first invalid setting."""
        from occface.models import VARIANTS
        _check(self.variant in VARIANTS, f"variant must be one of {', '.join(VARIANTS)}, got "
                                         f"{self.variant!r}")
        _check(self.depth in (18, 34, 50, 100),
               f"depth must be 18, 34, 50 or 100, got {self.depth}")
        _check(self.width >= 1, f"width must be positive, got {self.width}")
        _check(self.input_size >= 16, f"input_size must be >= 16, got {self.input_size}")
        _check(self.embedding_size >= 1, f"embedding_size must be positive, got "
                                         f"{self.embedding_size}")
        _check(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}")
        _check(self.steps >= 1, f"steps must be positive, got {self.steps}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                                             f"got {self.optimizer!r}")
        _check(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {', '.join(SCHEDULES)}"
                                              f", got {self.lr_schedule!r}")
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _check(self.strategy in dist.STRATEGIES,
               f"strategy must be one of {', '.join(dist.STRATEGIES)}, got {self.strategy!r}")
        _check(not (self.xla and self.strategy != "default"),
               "xla (jit_compile) is supported on a single device only (strategy 'default'); XLA "
               "inside MirroredStrategy/MultiWorkerMirroredStrategy replicas fails")
        _check(self.checkpoint_interval >= 0 and self.summary_interval >= 0
               and self.validation_interval >= 0, "intervals must be >= 0")
        _check(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got "
                                           f"{self.keep_checkpoints}")
        _check(self.max_nonfinite_steps >= 1, "max_nonfinite_steps must be >= 1")
        _check(0 <= self.lcd_min_rate <= self.lcd_max_rate <= 1,
               f"need 0 <= lcd_min_rate <= lcd_max_rate <= 1, got {self.lcd_min_rate}, "
               f"{self.lcd_max_rate}")
        _check(self.sr_reduction in ("mean", "sum"), f"sr_reduction must be 'mean' or 'sum', got "
                                                     f"{self.sr_reduction!r}")
        _check(self.arcface_scale > 0, "arcface_scale must be positive")
        _check(not (self.train_folds and not self.lfw_pairs),
               "train_folds needs lfw_pairs (the pairs.txt that defines the folds)")
        _check(not (set(self.train_folds) & set(self.val_folds)),
               f"train_folds {list(self.train_folds)} and val_folds {list(self.val_folds)} "
               "overlap: validation identities must not be trained on")
        _check(not (self.val_folds and not (self.val_pairs or self.lfw_pairs)),
               "val_folds needs val_pairs (or lfw_pairs)")


def int_list(values, name="value", ranges=True):
    """Integers from ``values`` (ints or strings; ``"0-6"`` expands to 0..6 when ``ranges``)."""
    out = []
    for v in values:
        text = str(v).strip()
        try:
            if ranges and "-" in text[1:]:
                lo, hi = text.split("-", 1) if not text.startswith("-") else (text, "")
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(text))
        except ValueError:
            raise ValueError(f"{name}: expected integers{' or ranges like 0-6' if ranges else ''}"
                             f", got {text!r}") from None
    return tuple(out)


def _check(ok, message):
    if not ok:
        raise ValueError(message)


# --------------------------------------------------------------------------------------------
# Building blocks


def build_model_and_head(config, num_classes):
    """The recognizer and its ArcFace head for ``config`` (call under ``strategy.scope()``)."""
    from occface.layers import ArcFace
    from occface.models import build_recognizer
    model = build_recognizer(
        depth=config.depth, variant=config.variant,
        input_shape=(config.input_size, config.input_size, 3),
        embedding_size=config.embedding_size, width=config.width, lcd_stage=config.lcd_stage,
        sam_stage=config.sam_stage, lcd_min_rate=config.lcd_min_rate,
        lcd_max_rate=config.lcd_max_rate, sr_filter_weight=config.sr_filter_weight,
        sr_response_weight=config.sr_response_weight, sr_reduction=config.sr_reduction,
        dropout=config.dropout, seed=config.seed)
    head = ArcFace(num_classes, margin=config.arcface_margin, scale=config.arcface_scale,
                   name="arcface")
    head.build([(None, config.embedding_size), (None,)])
    return model, head


def set_batchnorm_synchronized(model, synchronized):
    """Set ``synchronized`` on every BatchNormalization layer (cross-replica statistics)."""
    count = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = bool(synchronized)
            count += 1
    return count


def _all_layers(model):
    stack, seen = [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])
        stack.extend(getattr(layer, "_layers", []) or [])


def regularization_terms(model, reference=None):
    """Split ``model.losses`` into the weight-regularizer part (Eq. 1) and the rest (Eq. 2).

    Call right after a ``training=True`` forward pass (inside the same trace). Returns float32
    scalars ``(filter_term, response_term, total)``; ``filter_term`` is the sum of the kernel
    regularizers of trainable weights (the Eq. 1 filter orthogonality for SR variants) and
    ``response_term`` = total − filter_term (the activity losses added in ``call``: Eq. 2).

    Parameters
    ----------
    model : keras.Model
    reference : tensor, optional
        An output of this replica's forward pass. Under ``MirroredStrategy`` the replicas share
        the layer objects, so ``model.losses`` holds the activity losses of *every* replica traced
        so far (the replica threads interleave at synchronised-BatchNorm all-reduces); only the
        losses placed on ``reference``'s device — this replica's — are kept.
    """
    losses = list(model.losses)
    if reference is not None and tf.distribute.has_strategy() and losses:
        device = getattr(reference, "device", "")
        mine = [l for l in losses if getattr(l, "device", "") == device]
        if device and mine:
            losses = mine
    losses = [tf.cast(l, tf.float32) for l in losses]
    total = tf.add_n(losses) if losses else tf.zeros((), tf.float32)
    reg = [tf.cast(v.regularizer(v), tf.float32) for v in model.trainable_weights
           if getattr(v, "regularizer", None) is not None]
    filt = tf.add_n(reg) if reg else tf.zeros((), tf.float32)
    return filt, total - filt, total


def make_train_step(strategy, model, head, optimizer, inputs, *, global_batch_size,
                    l2_weight_decay=0.0, jit_compile=False, check_gradients=True):
    """The distributed training step of the recognizer, as a ``tf.function`` with no arguments.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    model, head : the recognizer and the ArcFace layer (built under ``strategy.scope()``).
    optimizer : keras optimizer (built on ``model`` + ``head`` trainable variables).
    inputs : ShardedInput
        Yields ``(images float32 (b, S, S, 3) in [0, 255], labels int32 (b,))`` per replica,
        optionally with a third element: the ``int64`` scalar count of training images skipped
        so far because they did not decode (``training_dataset(with_skip_count=True)``).
    global_batch_size : int
    l2_weight_decay : float
        Coupled weight decay (SGD), added as ``wd/2·Σ‖w‖²``.
    jit_compile : bool
        XLA-compile the forward/backward pass (single device only).
    check_gradients : bool
        Also skip steps with non-finite gradients (a ``LossScaleOptimizer`` does this itself).

    Returns
    -------
    callable
        ``step() -> dict`` of scalar tensors: ``loss``, ``arcface``, ``sr_filter``,
        ``sr_response``, ``weight_decay``, ``accuracy`` (margin logits, global batch),
        ``finite`` (whether the update was applied), ``skipped_images_count`` (this worker's
        undecodable images so far; 0 without a counter).
    """
    from occface.losses import arcface_loss
    num_replicas = strategy.num_replicas_in_sync
    if jit_compile and dist.is_distributed(strategy):
        raise ValueError("jit_compile (XLA) is supported on a single device only; XLA inside "
                         "MirroredStrategy replicas fails")
    variables = list(model.trainable_variables) + list(head.trainable_variables)
    bn_state = list(model.non_trainable_weights)

    def forward(images, labels):
        labels = tf.cast(labels, tf.int32)
        with tf.GradientTape() as tape:
            embeddings = model(images, training=True)
            logits = head([embeddings, labels], training=True)
            local = tf.cast(tf.shape(labels)[0], tf.float32)
            arc = arcface_loss(labels, logits) * local / float(global_batch_size)
            filt, resp, aux = regularization_terms(model, reference=embeddings)
            wd = l2_penalty(variables, l2_weight_decay)
            loss = arc + (aux + wd) / float(num_replicas)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(tf.cast(logits, tf.float32), axis=-1, output_type=tf.int32),
                     labels), tf.float32))
        if check_gradients:
            ok = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g))
                                         for g in grads if g is not None]))
        else:
            ok = tf.constant(True)
        bad = 1.0 - tf.cast(ok, tf.float32)
        terms = [arc, filt / num_replicas, resp / num_replicas, wd / num_replicas,
                 correct / float(global_batch_size), bad]
        return grads, terms

    if jit_compile:
        forward = tf.function(forward, jit_compile=True)

    def replica_step(batch):
        images, labels = batch[0], batch[1]
        skipped = tf.cast(batch[2], tf.float32) if len(batch) > 2 else tf.zeros((), tf.float32)
        snapshot = [tf.identity(v) for v in bn_state]
        grads, terms = forward(images, labels)
        arc, filt, resp, wd, acc, bad = dist.all_reduce_sum(terms)
        loss = arc + filt + resp + wd
        finite = tf.logical_and(tf.math.is_finite(loss), tf.equal(bad, 0.0))

        def apply(grads_):
            optimizer.apply(list(grads_), variables)

        def restore(snapshot_):
            for v, s in zip(bn_state, snapshot_):
                v.assign(s)

        dist.apply_if_finite(finite, apply, (list(grads),), restore, (snapshot,))
        return {"loss": loss, "arcface": arc, "sr_filter": filt, "sr_response": resp,
                "weight_decay": wd, "accuracy": acc, "finite": tf.cast(finite, tf.float32),
                "skipped_images_count": skipped}

    @tf.function
    def step():
        batch = inputs.next()
        out = strategy.run(replica_step, args=(batch,))
        # Every replica holds the same all-reduced values; take the first.
        return {k: strategy.experimental_local_results(v)[0] for k, v in out.items()}

    return step


# --------------------------------------------------------------------------------------------
# Data


def training_identities(config):
    """The identity filter of ``config`` (LFW ``train_folds``), or None for all identities."""
    import occface.data as occdata
    if not config.train_folds:
        return None
    pairs = pathlib.Path(config.lfw_pairs)
    if not pairs.is_file():
        raise FileNotFoundError(f"LFW pairs file not found: {pairs}")
    identities = occdata.lfw_training_identities(
        config.data_dir, folds=config.train_folds,
        min_images=config.min_images_per_identity, pairs_file=pairs.resolve())
    if not identities:
        raise ValueError(f"no identity of folds {list(config.train_folds)} has at least "
                         f"{config.min_images_per_identity} images in {config.data_dir}")
    return identities


def steps_for_epochs(config, epochs):
    """Steps that make ``epochs`` passes over ``config``'s training images (global batch)."""
    import occface.data as occdata
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if not config.data_dir or not pathlib.Path(config.data_dir).exists():
        raise FileNotFoundError(f"training data not found: {config.data_dir}")
    n = occdata.open_source(config.data_dir, training_identities(config)).num_images
    if not n:
        raise ValueError(f"empty training set: no images in {config.data_dir}")
    return max(1, math.ceil(epochs * n / config.batch_size))


def training_data(config, per_worker_batch, seed):
    """``(dataset, num_classes)`` for ``config`` from :func:`occface.data.training_dataset`.

    Images that do not decode are skipped by the pipeline and counted (third element of each
    batch; logged as ``skipped_images_count``).
    """
    import occface.data as occdata
    if not config.data_dir:
        raise ValueError("no training data: set data_dir")
    if not pathlib.Path(config.data_dir).exists():
        raise FileNotFoundError(f"training data not found: {config.data_dir}")
    identities = training_identities(config)
    try:
        training_dataset = occdata.training_dataset
    except AttributeError:
        raise ValueError("occface.data.training_dataset is not available in this version of "
                         "occface.data") from None
    kwargs = dict(augment=config.augment, seed=seed, identities=identities, with_skip_count=True)
    if config.train_occlusion:
        kwargs["occlusion"] = config.train_occlusion
    dataset, num_classes = training_dataset(config.data_dir, per_worker_batch, config.input_size,
                                            **kwargs)
    if not num_classes:
        raise ValueError(f"empty training set: no identities found in {config.data_dir}")
    return dataset, int(num_classes)


def validation_sets(config):
    """The :class:`~occface.train.validation.PairSet` s of ``config`` (empty dict if none)."""
    from occface.train.validation import lfw_validation_sets
    if not config.val_folds:
        return {}
    pairs = config.val_pairs or config.lfw_pairs
    root = config.val_data_dir or config.data_dir
    return lfw_validation_sets(pairs, root, config.val_folds, config.input_size,
                               occlusions=config.val_occlusions, seed=config.seed)


# --------------------------------------------------------------------------------------------
# The run


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
        "images_per_sec", "model_path", "restored_from", "model", "head"}``; ``model`` and
        ``head`` are the trained Keras objects (the rest is JSON-serialisable).

    Notes
    -----
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
    if isinstance(config, dict):
        config = RecognizerConfig.from_dict(config)
    config.validate()
    if not config.model_dir:
        raise ValueError("model_dir is required")
    if (dataset is None) != (num_classes is None):
        raise ValueError("pass dataset and num_classes together")
    model_dir = pathlib.Path(config.model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ValueError(f"model_dir {model_dir} exists and is not a directory")

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
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
    is_chief, _, _, num_workers = dist.worker_info(strategy)
    worker = dist.worker_index(strategy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas")
    per_worker_batch = config.batch_size // num_workers

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
    if restored:
        log.info("resumed from %s at step %d", restored, int(step_var.numpy()))
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
    start_step = int(step_var.numpy())
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
