"""Fixtures of the multi-backend suite (run as ``KERAS_BACKEND=jax|torch pytest tests_backends``).

This suite runs in its own virtualenv without TensorFlow (``.ci/run`` builds ``.venv-backends``).
The cross-backend ``.keras`` check needs files saved under TensorFlow: ``OCCFACE_TF_REFERENCE``
names a folder written by ``tests_backends/tf_reference.py`` (``.ci/run`` writes it with the
TensorFlow venv); without it the ``tf_reference`` fixture writes one with ``.venv/bin/python``.
"""
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # the package, without installing it into this venv
    sys.path.insert(0, str(REPO))


if keras.backend.backend() == "torch":
    # torch 2.13.0 (CPU wheel): oneDNN aborts the process ("Fatal Python error: Aborted", no
    # message) in the backward pass of the tiny IR-ResNet's training step, intermittently with
    # two threads and every time with OMP_NUM_THREADS=1; with oneDNN off the same step passes.
    # The README's compatibility table tells PyTorch users the same workaround.
    import torch
    torch.backends.mkldnn.enabled = False


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}"


@pytest.fixture(scope="session", autouse=True)
def _backend_is_the_requested_one():
    wanted = os.environ.get("KERAS_BACKEND")
    assert wanted in ("jax", "torch"), "run with KERAS_BACKEND=jax or KERAS_BACKEND=torch"
    assert keras.backend.backend() == wanted


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tf_reference(tmp_path_factory):
    """Folder with ``*.keras`` models saved under TensorFlow and ``reference.npz`` outputs."""
    given = os.environ.get("OCCFACE_TF_REFERENCE")
    if given:
        out = pathlib.Path(given)
        if not (out / "reference.npz").is_file():
            pytest.fail(f"OCCFACE_TF_REFERENCE={given} holds no reference.npz")
        return out
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no TensorFlow venv (.venv) to save the reference models with")
        pytest.skip("no TensorFlow venv (.venv) to save the reference models with")
    out = tmp_path_factory.mktemp("tf_reference")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([str(python), str(HERE / "tf_reference.py"), str(out)], check=True, env=env,
                   cwd=REPO, capture_output=True)
    return out


def grad(fn, x):
    """Gradient of the scalar ``fn(x)`` with respect to the numpy array ``x``, as numpy."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        return np.asarray(jax.grad(lambda t: fn(t))(keras.ops.convert_to_tensor(x)))
    import torch
    t = torch.tensor(x, requires_grad=True)
    fn(t).backward()
    return t.grad.detach().numpy()
