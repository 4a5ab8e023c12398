"""Training loops under ``tf.distribute``: reusable machinery and the recognizer trainer.

Reusable pieces (the ID-GAN trainer uses them too)
    :mod:`occface.train.distribute` — :func:`make_strategy`, :func:`worker_info`,
    :class:`ShardedInput` (checkpointable input position), :func:`all_reduce_sum`,
    :func:`apply_if_finite` (skip a non-finite update on every replica);
    :mod:`occface.train.checkpoint` — :class:`CheckpointKeeper` (keep-N, chief-only writes,
    fallback restore), :func:`check_config` / :class:`ConfigMismatchError`,
    :func:`rng_variables`, :func:`save_keras_atomic`;
    :mod:`occface.train.loop` — :class:`TrainingLoop`, :class:`NonFiniteGuard` /
    :class:`NonFiniteLossError`, :class:`SummaryWriter`;
    :mod:`occface.train.optim` — :class:`WarmupSchedule`, :func:`make_optimizer`,
    :func:`l2_penalty`.
Recognizer
    :class:`RecognizerConfig`, :func:`train_recognizer`, :func:`make_train_step`;
    validation: :class:`PairsValidator`, :class:`PairSet`, :func:`lfw_validation_sets`.
"""

from occface.train.checkpoint import (CheckpointKeeper, ConfigMismatchError, check_config,
                                      rng_variables, save_keras_atomic)
from occface.train.distribute import (STRATEGIES, ShardedInput, all_reduce_sum, apply_if_finite,
                                      is_distributed, make_strategy, worker_info)
from occface.train.loop import NonFiniteGuard, NonFiniteLossError, SummaryWriter, TrainingLoop
from occface.train.optim import WarmupSchedule, l2_penalty, make_optimizer
from occface.train.recognizer import (RecognizerConfig, make_train_step, regularization_terms,
                                      train_recognizer)
from occface.train.validation import PairSet, PairsValidator, lfw_validation_sets

__all__ = ["CheckpointKeeper", "ConfigMismatchError", "check_config", "rng_variables",
           "save_keras_atomic", "STRATEGIES", "ShardedInput", "all_reduce_sum", "apply_if_finite",
           "is_distributed", "make_strategy", "worker_info", "NonFiniteGuard",
           "NonFiniteLossError", "SummaryWriter", "TrainingLoop", "WarmupSchedule", "l2_penalty",
           "make_optimizer", "RecognizerConfig", "make_train_step", "regularization_terms",
           "train_recognizer", "PairSet", "PairsValidator", "lfw_validation_sets"]
