import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from occface.train.checkpoint import CheckpointKeeper
from occface.train.loop import NonFiniteGuard, NonFiniteLossError, SummaryWriter, TrainingLoop


def _events(logdir):
    out = {}
    for path in glob.glob(os.path.join(str(logdir), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value))
    return out


def test_guard_counts_streaks():
    guard = NonFiniteGuard(3)
    for s in range(1, 3):
        guard.update(False, s)
    guard.update(True, 3)
    assert guard.consecutive == 0 and guard.total_skipped == 2
    guard.update(False, 4)
    guard.update(False, 5)
    with pytest.raises(NonFiniteLossError, match=r"step 6: 3 consecutive.*ckpt-2"):
        guard.update(False, 6, last_checkpoint="/x/ckpt-2")
    with pytest.raises(ValueError):
        NonFiniteGuard(0)


class FakeStep:
    """A step function over a scripted list of losses (NaN = a skipped step)."""

    def __init__(self, losses, weight):
        self.losses, self.weight, self.calls = losses, weight, 0

    def __call__(self):
        loss = self.losses[self.calls]
        self.calls += 1
        finite = bool(np.isfinite(loss))
        if finite:
            self.weight.assign_add(1.0)
        return {"loss": tf.constant(loss), "finite": tf.constant(float(finite)),
                "seen_count": tf.constant(float(self.calls))}


def test_loop_checkpoints_summaries_hooks_and_progress(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    weight = tf.Variable(0.0)
    keeper = CheckpointKeeper(tmp_path, max_to_keep=10, step=step, weight=weight)
    order, progress = [], []

    def hook(s, values):
        order.append(("hook", s, keeper.last_saved))

    loop = TrainingLoop(FakeStep([1.0, 2.0, 3.0, 4.0, 5.0], weight), 5, step, keeper,
                        checkpoint_interval=2, summary_interval=2,
                        summaries=SummaryWriter(tmp_path / "train"),
                        extra_scalars=lambda: {"learning_rate": 0.1}, hooks=[hook],
                        progress=lambda s, t, v: progress.append((s, t, v["loss"])),
                        images_per_step=8)
    loop.run()
    names = [os.path.basename(p) for p in keeper.checkpoints]
    assert names == ["ckpt-2", "ckpt-4", "ckpt-5"]
    # The hook of step 2 runs before step 2's checkpoint is written.
    assert order[1] == ("hook", 2, None)
    assert progress == [(i, 5, float(i)) for i in range(1, 6)]
    steps = [s for s, _ in loop.history]
    assert steps == [2, 4, 5]
    assert loop.history[0][1]["loss"] == pytest.approx(1.5)
    assert loop.history[1][1]["seen_count"] == 4.0  # counters: latest value, not a mean
    assert loop.timed_steps == 4 and loop.images_per_sec > 0
    events = _events(tmp_path / "train")
    for tag in ("loss", "learning_rate", "images_per_sec", "steps_per_sec", "skipped_steps"):
        assert tag in events, sorted(events)
    assert [s for s, _ in events["loss"]] == [2, 4, 5]
    assert events["loss"][0][1].metadata.plugin_data.plugin_name == "scalars"
    # Already finished: running again does nothing.
    loop2 = TrainingLoop(FakeStep([], weight), 5, step, keeper)
    loop2.run()
    assert keeper.checkpoints[-1].endswith("ckpt-5")


def test_loop_stops_on_nonfinite_streak_keeping_last_good_checkpoint(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    weight = tf.Variable(0.0)
    keeper = CheckpointKeeper(tmp_path, max_to_keep=10, step=step, weight=weight)
    nan = float("nan")
    losses = [1.0, 1.0, 1.0, nan, 1.0, nan, nan, nan, 1.0]
    loop = TrainingLoop(FakeStep(losses, weight), 9, step, keeper, checkpoint_interval=1,
                        guard=NonFiniteGuard(3))
    with pytest.raises(NonFiniteLossError, match=r"step 8: 3 consecutive.*ckpt-5"):
        loop.run()
    names = [os.path.basename(p) for p in keeper.checkpoints]
    # No checkpoint during a streak (steps 4, 6, 7); the newest is the last good state.
    assert names == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-5"]
    step2, weight2 = tf.Variable(0, dtype=tf.int64), tf.Variable(0.0)
    CheckpointKeeper(tmp_path, step=step2, weight=weight2).restore()
    assert int(step2.numpy()) == 5 and float(weight2.numpy()) == 4.0


def test_summary_writer_images_and_disabled(tmp_path):
    w = SummaryWriter(tmp_path / "s")
    w.images(3, "grid", np.random.default_rng(0).uniform(0, 255, (2, 8, 6, 3)))
    w.close()
    (tag_events,) = _events(tmp_path / "s")["grid"]
    step, value = tag_events
    assert step == 3 and value.metadata.plugin_data.plugin_name == "images"
    tensor = tf.make_ndarray(value.tensor)
    assert tensor[0] == b"6" and tensor[1] == b"8" and len(tensor) == 4
    assert tf.io.decode_png(tensor[2]).shape == (8, 6, 3)
    off = SummaryWriter(tmp_path / "off", enabled=False)
    off.scalars(1, {"a": 1.0})
    assert not (tmp_path / "off").exists()
