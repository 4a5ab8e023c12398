"""Training loops under ``tf.distribute``: reusable machinery and the recognizer trainer.

Reusable pieces (the ID-GAN trainer uses them too)
    :mod:`occface.train.distribute` — :func:`make_strategy`, :func:`worker_info`,
    :func:`per_worker_batch_size`, :class:`ShardedInput` (checkpointable input position),
    :func:`all_reduce_sum`, :func:`apply_if_finite` (skip a non-finite update on every replica);
    :mod:`occface.train.checkpoint` — :class:`CheckpointKeeper` (keep-N, chief-only writes,
    fallback restore), :func:`check_config` / :class:`ConfigMismatchError`,
    :func:`start_run` (checked settings, seeds), :func:`rng_variables`, :func:`save_keras_atomic`;
    :mod:`occface.train.loop` — :class:`TrainingLoop`, :class:`NonFiniteGuard` /
    :class:`NonFiniteLossError`, :class:`SummaryWriter`;
    :mod:`occface.train.optim` — :class:`WarmupSchedule`, :func:`make_optimizer`,
    :func:`l2_penalty`;
    :mod:`occface.train.data` — :func:`~occface.train.data.training_identities` (LFW folds).
Recognizer
    :mod:`occface.train.config` — :class:`RecognizerConfig` (imports no TensorFlow);
    :mod:`occface.train.model`, :mod:`occface.train.step` — :func:`make_train_step`,
    :func:`regularization_terms`; :mod:`occface.train.recognizer` — :func:`train_recognizer`;
    validation: :class:`PairsValidator`, :class:`PairSet`, :func:`lfw_validation_sets`.

The names below are imported on first use (PEP 562), so ``occface.train.config`` can be imported
without TensorFlow (the tools parse their flags before importing it).
"""

_EXPORTS = {
    "checkpoint": ("CheckpointKeeper", "ConfigMismatchError", "check_config", "rng_variables",
                   "save_keras_atomic", "start_run"),
    "distribute": ("STRATEGIES", "ShardedInput", "all_reduce_sum", "apply_if_finite",
                   "is_distributed", "make_strategy", "per_worker_batch_size", "worker_info"),
    "loop": ("NonFiniteGuard", "NonFiniteLossError", "SummaryWriter", "TrainingLoop"),
    "optim": ("WarmupSchedule", "l2_penalty", "make_optimizer"),
    "config": ("RecognizerConfig",),
    "step": ("make_train_step", "regularization_terms"),
    "recognizer": ("train_recognizer",),
    "validation": ("PairSet", "PairsValidator", "lfw_validation_sets"),
}

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name):
    owner = next((module for module, names in _EXPORTS.items() if name in names), None)
    if owner is None:  # also the route of `from occface.train import <submodule>`
        raise AttributeError(f"module 'occface.train' has no attribute {name!r}")
    from occface.train import (checkpoint, config, distribute, loop, optim, recognizer, step,
                               validation)
    modules = {"checkpoint": checkpoint, "config": config, "distribute": distribute,
               "loop": loop, "optim": optim, "recognizer": recognizer, "step": step,
               "validation": validation}
    value = getattr(modules[owner], name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
