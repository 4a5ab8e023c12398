"""A step-driven training loop with checkpoints, a non-finite guard, summaries and hooks.

:class:`TrainingLoop` knows nothing about what a step computes: it calls ``step_fn()`` (usually
a ``tf.function`` running ``strategy.run``) which returns a dict of scalar tensors including a
boolean ``"finite"`` (whether the update was applied), and around it does the bookkeeping every
trainer in the package shares (recognizer, ID-GAN):

* advances a checkpointed step counter (one per consumed batch, applied or skipped);
* :class:`NonFiniteGuard`: counts consecutive skipped (non-finite) steps and stops the run with
  :class:`NonFiniteLossError` after ``max_consecutive``; no checkpoint is written while a streak
  is open, so the newest checkpoint is the last good state;
* averages the scalars over each summary interval and writes them with :class:`SummaryWriter`
  (TensorBoard, chief only), plus images/s;
* saves a checkpoint every ``checkpoint_interval`` steps and at the end;
* calls ``hooks`` (e.g. periodic validation) and a ``progress`` callback (a tool's console bar:
  library code never prints).
"""

import logging
import math
import time

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class NonFiniteGuard:
    """Count consecutive non-finite steps; raise after ``max_consecutive`` in a row.

    Parameters
    ----------
    max_consecutive : int
        Number of skipped steps in a row that stops the run (>= 1).
    """

    def __init__(self, max_consecutive=10):
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = int(max_consecutive)
        self.consecutive = 0
        self.total_skipped = 0

    @property
    def in_streak(self):
        return self.consecutive > 0

    def update(self, finite, step, last_checkpoint=None):
        """Record one step; raise :class:`NonFiniteLossError` when the streak is too long."""
        if finite:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total_skipped += 1
        log.warning("step %d: non-finite loss or gradient, update skipped (%d in a row)",
                    step, self.consecutive)
        if self.consecutive >= self.max_consecutive:
            where = (f"last good checkpoint: {last_checkpoint}" if last_checkpoint
                     else "no checkpoint was written yet")
            raise NonFiniteLossError(
                f"stopping at step {step}: {self.consecutive} consecutive steps had a non-finite "
                f"loss or gradient (updates skipped); {where}. Lower the learning rate or check "
                "the data")


class ScalarMeans:
    """Running means of named scalars over an interval."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._sums, self._counts = {}, {}

    def add(self, values):
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
            self._counts[k] = self._counts.get(k, 0) + 1

    def means(self):
        return {k: self._sums[k] / self._counts[k] for k in self._sums}


def _summary_metadata(plugin_name):
    from tensorflow.core.framework import summary_pb2
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin_name  # content: the plugin's version-0 proto (empty)
    return metadata


class SummaryWriter:
    """TensorBoard scalars/images under ``logdir`` (a no-op when ``enabled`` is false).

    Written with the core ``tf.summary.write`` op and the ``scalars`` / ``images`` plugin
    metadata that TensorBoard's own ``tf.summary.scalar`` / ``image`` use, so the event files are
    the same but the ``tensorboard`` package (not a dependency) is not needed to write them.
    """

    def __init__(self, logdir, enabled=True):
        self.enabled = bool(enabled) and logdir is not None
        self._writer = tf.summary.create_file_writer(str(logdir)) if self.enabled else None
        self._scalar_md = _summary_metadata("scalars")
        self._image_md = _summary_metadata("images")

    def scalars(self, step, values, prefix=""):
        if not self.enabled:
            return
        with self._writer.as_default():
            for k, v in values.items():
                if v is not None and math.isfinite(float(v)):
                    tf.summary.write(prefix + k, tf.constant(float(v), tf.float32),
                                     step=int(step), metadata=self._scalar_md)
        self._writer.flush()

    def images(self, step, name, images, max_outputs=8):
        """``images``: float/uint8 ``(N, H, W, C)`` in [0, 255], C in {1, 3, 4}."""
        if not self.enabled:
            return
        x = np.clip(np.asarray(images, np.float32), 0, 255).astype(np.uint8)[:max_outputs]
        if x.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {x.shape}")
        h, w = x.shape[1:3]
        encoded = [tf.io.encode_png(img) for img in x]
        tensor = tf.stack([tf.constant(str(w)), tf.constant(str(h))] + encoded)
        with self._writer.as_default():
            tf.summary.write(name, tensor, step=int(step), metadata=self._image_md)
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


class TrainingLoop:
    """Run ``step_fn`` until ``total_steps`` with checkpoints, guard, summaries and hooks.

    Parameters
    ----------
    step_fn : callable
        ``step_fn() -> dict[str, scalar tensor]``; must contain ``"finite"`` (bool/0-1: whether
        the update was applied). Other entries are averaged (over applied steps) for summaries,
        except counters (keys ending in ``_count``), logged at their latest value; all are passed
        to ``progress``.
    total_steps : int
    step : tf.Variable (int64)
        The step counter; checkpoint it with the rest so a resumed run starts where it stopped.
    keeper : CheckpointKeeper or None
    checkpoint_interval, summary_interval : int
        In steps; 0 disables (a final checkpoint is still written at the end when a keeper
        is given).
    guard : NonFiniteGuard, optional
    summaries : SummaryWriter, optional
    extra_scalars : callable, optional
        ``extra_scalars() -> dict`` of values to log at each summary (e.g. the learning rate).
    hooks : sequence of callables
        ``hook(step, scalars)`` after every step (a hook decides its own interval); called before
        that step's checkpoint, so state a hook changes (e.g. the best metric) is saved with it.
    progress : callable, optional
        ``progress(step, total_steps, scalars)`` after every step.
    images_per_step : int, optional
        Global batch size, for the ``images_per_sec`` summary.
    """

    def __init__(self, step_fn, total_steps, step, keeper=None, *, checkpoint_interval=1000,
                 summary_interval=100, guard=None, summaries=None, extra_scalars=None, hooks=(),
                 progress=None, images_per_step=None):
        self.step_fn = step_fn
        self.total_steps = int(total_steps)
        self.step = step
        self.keeper = keeper
        self.checkpoint_interval = int(checkpoint_interval or 0)
        self.summary_interval = int(summary_interval or 0)
        self.guard = guard or NonFiniteGuard()
        self.summaries = summaries
        self.extra_scalars = extra_scalars
        self.hooks = list(hooks)
        self.progress = progress
        self.images_per_step = images_per_step
        self.history = []  # (step, means) at each summary
        self.step_seconds = 0.0  # time inside step_fn, first (tracing) step excluded
        self.timed_steps = 0
        self.first_step_seconds = None

    @property
    def images_per_sec(self):
        """Training throughput over this run (first step excluded), or None."""
        if not self.timed_steps or not self.images_per_step:
            return None
        return self.images_per_step * self.timed_steps / self.step_seconds

    def _save(self, step):
        if self.keeper is None or self.guard.in_streak:
            return
        path = self.keeper.save(step)
        if path:
            log.info("step %d: checkpoint %s", step, path)

    def run(self):
        """Train from the current value of ``step`` to ``total_steps``; returns the last values.

        Throughput (``images_per_sec``, ``steps_per_sec`` in summaries; :attr:`step_seconds`)
        counts only the time inside ``step_fn`` (data wait included; validation, checkpoints and
        summaries excluded) and leaves out the first step of the run, which traces the graph.
        """
        step = int(self.step.numpy())
        means = ScalarMeans()
        interval_time, interval_steps = 0.0, 0
        first = True
        last = {}
        while step < self.total_steps:
            t0 = time.perf_counter()
            out = self.step_fn()
            values = {k: float(np.asarray(v)) for k, v in out.items()}
            dt = time.perf_counter() - t0
            if first:
                self.first_step_seconds = dt
                first = False
            else:
                interval_time += dt
                interval_steps += 1
                self.step_seconds += dt
                self.timed_steps += 1
            step += 1
            self.step.assign(step)
            finite = bool(values.pop("finite", 1.0))
            self.guard.update(finite, step,
                              last_checkpoint=self.keeper.last_saved if self.keeper else None)
            counts = {k: v for k, v in values.items() if k.endswith("_count")}
            if finite:
                means.add({k: v for k, v in values.items() if k not in counts})
            last = values
            if self.summary_interval and (step % self.summary_interval == 0
                                          or step == self.total_steps):
                logged = means.means()
                logged.update(counts)  # counters: the latest value, not a mean
                if interval_steps:
                    logged["steps_per_sec"] = interval_steps / max(interval_time, 1e-9)
                    if self.images_per_step:
                        logged["images_per_sec"] = logged["steps_per_sec"] * self.images_per_step
                logged["skipped_steps"] = float(self.guard.total_skipped)
                if self.extra_scalars is not None:
                    logged.update(self.extra_scalars())
                if self.summaries is not None:
                    self.summaries.scalars(step, logged)
                self.history.append((step, logged))
                log.info("step %d: %s", step,
                         ", ".join(f"{k}={v:.4g}" for k, v in sorted(logged.items())))
                means.reset()
                interval_time, interval_steps = 0.0, 0
            for hook in self.hooks:
                hook(step, values)
            if self.checkpoint_interval and step % self.checkpoint_interval == 0 \
                    and step != self.total_steps:
                self._save(step)
            if self.progress is not None:
                self.progress(step, self.total_steps, values)
        if self.keeper is not None and (self.keeper.last_saved is None
                                        or not self.keeper.last_saved.endswith(f"-{step}")):
            self._save(step)
        return last
