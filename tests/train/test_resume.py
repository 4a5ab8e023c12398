"""Exact resume after SIGKILL, including kills in the middle of writing a checkpoint.

Every run is a subprocess (``train_worker.py``) training a tiny ``lcd`` recognizer (random channel
dropout, so the RNG state matters) with deterministic ops on a small image tree read by the real
``occface.data.training_dataset`` (shuffled and augmented, so the data position matters). The
interrupted chain must end with exactly the same variables (model, head, optimizer slots and
iterations, step, RNG states) as an uninterrupted run.
"""
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import tensorflow as tf

WORKER = pathlib.Path(__file__).with_name("train_worker.py")
STEPS, INTERVAL = 10, 3


def _load_worker():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import train_worker
    finally:
        sys.path.pop(0)
    return train_worker


def _env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _listed(model_dir):
    state = tf.train.get_checkpoint_state(str(model_dir / "checkpoints"))
    return [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []


def _run_until_killed(cmd, kill_after_line=None, timeout=240):
    """Run ``cmd``; SIGKILL it when a stdout line equals ``kill_after_line`` (if given)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=_env())
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if kill_after_line and line.startswith(kill_after_line):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, lines


def _assert_restorable(model_dir):
    for name in _listed(model_dir):
        reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / name))
        assert "step/.ATTRIBUTES/VARIABLE_VALUE" in reader.get_variable_to_shape_map()


def test_kill9_and_kills_during_save_resume_exactly(tmp_path):
    data = _load_worker().face_tree(tmp_path / "faces")

    def _cmd(model_dir, *extra):
        return [sys.executable, str(WORKER), f"--model_dir={model_dir}", f"--steps={STEPS}",
                f"--checkpoint_interval={INTERVAL}", "--variant=lcd", f"--data_dir={data}",
                *extra]

    ref_dir, dir_ = tmp_path / "uninterrupted", tmp_path / "interrupted"
    # The reference run goes on in parallel with the interrupted chain.
    ref = subprocess.Popen(_cmd(ref_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=_env())

    # 1. SIGKILL from outside between checkpoints (after step 5; ckpt-3 is the newest).
    rc, lines = _run_until_killed(_cmd(dir_, "--sleep=0.3"), kill_after_line="step 5")
    assert rc == -signal.SIGKILL, lines
    assert _listed(dir_) == ["ckpt-3"]
    _assert_restorable(dir_)

    # 2. SIGKILL inside the save of ckpt-6, before the shards are merged into the final files.
    rc, lines = _run_until_killed(_cmd(dir_, "--die_in_save=merge", "--die_at_save=6"))
    assert rc == -signal.SIGKILL, lines
    assert lines[0].startswith("step 4 "), lines  # resumed from ckpt-3
    assert _listed(dir_) == ["ckpt-3"]
    assert not (dir_ / "checkpoints" / "ckpt-6.index").exists()
    _assert_restorable(dir_)

    # 3. SIGKILL after ckpt-9's files are complete but before the index file lists it.
    rc, lines = _run_until_killed(_cmd(dir_, "--die_in_save=index", "--die_at_save=9"))
    assert rc == -signal.SIGKILL, lines
    assert lines[0].startswith("step 4 "), lines
    assert _listed(dir_) == ["ckpt-3", "ckpt-6"]
    _assert_restorable(dir_)

    # 4. Restart to the end: it continues from ckpt-6 at step 7.
    rc, lines = _run_until_killed(_cmd(dir_))
    assert rc == 0, lines
    assert lines[0].startswith("step 7 "), lines
    assert any(l.startswith("restored_from") and l.endswith("ckpt-6") for l in lines), lines

    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-3000:]
    a = np.load(ref_dir / "final_state.npz")
    b = np.load(dir_ / "final_state.npz")
    assert sorted(a.files) == sorted(b.files)
    assert str(a["__checkpoint__"]) == str(b["__checkpoint__"]) == f"ckpt-{STEPS}"
    names = [k for k in a.files if k != "__checkpoint__"]
    assert any(k.startswith("rng|") for k in names)  # LCD seed states are checkpointed
    assert any("optimizer" in k for k in names)
    for k in names:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # The losses printed after the resume match the reference run's at the same steps.
    ref_losses = {l.split()[1]: l for l in out.splitlines() if l.startswith("step ")}
    for line in lines:
        if line.startswith("step "):
            assert ref_losses[line.split()[1]] == line
