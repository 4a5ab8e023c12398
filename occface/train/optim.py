"""Learning-rate schedules and optimizers for the training loops.

The recognizer follows ArcFace / the LCD paper: SGD with momentum 0.9 and weight decay 5e-4
(PyTorch/MXNet semantics, i.e. an L2 term ``wd/2·‖w‖²`` whose gradient passes through
momentum),
a linear warm-up, then a piecewise-constant (÷10 at given steps) or cosine decay. AdamW (decoupled
weight decay, Loshchilov & Hutter) is offered as the alternative.
"""

import math

import keras
from keras import ops

from occface.choices import OPTIMIZERS, SCHEDULES


@keras.saving.register_keras_serializable(package="occface")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up followed by a piecewise-constant, cosine or constant schedule.

    For step ``t`` (the optimizer's ``iterations``, i.e. applied updates):

    * ``t < warmup_steps``: ``lr = base_lr · (w0 + (1 − w0) · t / warmup_steps)`` with
      ``w0 = warmup_start``;
    * ``piecewise``: ``lr = base_lr · decay_rate^k``, ``k`` = number of ``boundaries`` ≤ t;
    * ``cosine``: ``lr = min_lr + (base_lr − min_lr) · ½(1 + cos(π·u))``,
      ``u = clip((t − warmup_steps) / (total_steps − warmup_steps), 0, 1)``;
    * ``constant``: ``lr = base_lr``.

    Parameters
    ----------
    base_lr : float
    total_steps : int
        Length of the run (only the cosine schedule uses it).
    decay : {"piecewise", "cosine", "constant"}
    warmup_steps : int
    warmup_start : float
        Fraction of ``base_lr`` at step 0 of the warm-up.
    boundaries : sequence of int
        Steps at which the piecewise schedule multiplies the rate by ``decay_rate``.
    decay_rate : float
    min_lr : float
        Final rate of the cosine schedule.
    """

    def __init__(self, base_lr, total_steps, decay="piecewise", warmup_steps=0, warmup_start=0.0,
                 boundaries=(), decay_rate=0.1, min_lr=0.0):
        if decay not in SCHEDULES:
            raise ValueError(f"unknown lr schedule {decay!r}; expected one of "
                             f"{', '.join(SCHEDULES)}")
        if base_lr <= 0:
            raise ValueError(f"learning rate must be positive, got {base_lr}")
        if warmup_steps < 0 or total_steps <= 0:
            raise ValueError(f"need total_steps > 0 and warmup_steps >= 0, got {total_steps}, "
                             f"{warmup_steps}")
        if not 0.0 <= warmup_start <= 1.0:
            raise ValueError(f"warmup_start is a fraction of the base rate in [0, 1], got "
                             f"{warmup_start}")
        boundaries = [int(b) for b in boundaries]
        if any(b <= 0 for b in boundaries) or boundaries != sorted(boundaries):
            raise ValueError(f"lr boundaries must be increasing positive steps, got {boundaries}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.decay = decay
        self.warmup_steps = int(warmup_steps)
        self.warmup_start = float(warmup_start)
        self.boundaries = boundaries
        self.decay_rate = float(decay_rate)
        self.min_lr = float(min_lr)

    def __call__(self, step):
        t = ops.cast(step, "float32")
        base = self.base_lr
        if self.decay == "piecewise":
            k = ops.zeros((), "float32")
            for b in self.boundaries:
                k = k + ops.cast(ops.greater_equal(t, float(b)), "float32")
            after = base * ops.power(self.decay_rate, k)
        elif self.decay == "cosine":
            span = float(max(self.total_steps - self.warmup_steps, 1))
            u = ops.clip((t - float(self.warmup_steps)) / span, 0.0, 1.0)
            after = self.min_lr + (base - self.min_lr) * 0.5 * (1.0 + ops.cos(math.pi * u))
        else:
            after = ops.convert_to_tensor(base, "float32")
        if self.warmup_steps == 0:
            return after
        w0 = self.warmup_start
        warm = base * (w0 + (1.0 - w0) * t / float(self.warmup_steps))
        return ops.where(ops.less(t, float(self.warmup_steps)), warm, after)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "decay": self.decay,
                "warmup_steps": self.warmup_steps, "warmup_start": self.warmup_start,
                "boundaries": list(self.boundaries), "decay_rate": self.decay_rate,
                "min_lr": self.min_lr}


def make_optimizer(name, learning_rate, *, momentum=0.9, nesterov=False, weight_decay=0.0,
                   beta_1=0.9, beta_2=0.999, epsilon=1e-8, mixed_precision=False):
    """Build the optimizer.

    Parameters
    ----------
    name : {"sgd", "adamw"}
    learning_rate : float or keras LearningRateSchedule
    momentum, nesterov : SGD settings.
    weight_decay : float
        Used here only by AdamW (decoupled decay). For SGD the training step adds the coupled
        L2 term itself (see :func:`l2_penalty`), so the value is *not* passed to Keras' SGD, whose
        ``weight_decay`` is decoupled and would not match the paper's setting.
    beta_1, beta_2, epsilon : AdamW settings.
    mixed_precision : bool
        Wrap in ``keras.optimizers.LossScaleOptimizer`` (dynamic loss scaling) for
        ``mixed_float16`` training.
    """
    if name == "sgd":
        opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                   nesterov=nesterov)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay,
                                     beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    else:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    if mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def l2_penalty(variables, weight_decay):
    """Coupled weight decay as a loss term: ``weight_decay/2 · Σ‖w‖²`` (gradient ``wd·w``).

    This is PyTorch / MXNet SGD ``weight_decay`` (what ArcFace and the LCD paper use).
    Returns a float32 scalar (0 when ``weight_decay`` is 0).
    """
    if not weight_decay:
        return ops.zeros((), "float32")
    total = ops.zeros((), "float32")
    for v in variables:
        total = total + ops.sum(ops.square(ops.cast(v, "float32")))
    return 0.5 * float(weight_decay) * total


def current_learning_rate(optimizer):
    """The optimizer's learning rate at its current ``iterations`` as a Python float."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    try:
        return float(ops.convert_to_numpy(lr))
    except (TypeError, ValueError):  # pragma: no cover - a schedule object
        return float(ops.convert_to_numpy(lr(inner.iterations)))
