"""Shared pytest fixtures.

Tests that need the real face data use the ``data_root`` fixture. In CI (``CI=true``) the data is
always present, so a missing directory is a failure there; elsewhere such tests are skipped.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import tensorflow as tf

from occface.paths import data_root as _data_root

# Two logical CPU devices for the whole test session, so tf.distribute.MirroredStrategy tests can
# run replicas on this 2-core machine. This must happen before TensorFlow initialises its devices,
# i.e. here, before any test runs. Single-device code is unaffected (it uses /CPU:0).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


@pytest.fixture(scope="session")
def data_root():
    root = _data_root(required=False)
    if root is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("OCCFACE_DATA / ../shared/data is missing in CI")
        pytest.skip("real face data not available (set OCCFACE_DATA)")
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(0)


_EXIT_STATUS = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


def pytest_unconfigure(config):
    """Leave without interpreter teardown once pytest has reported.

    At teardown, TensorFlow can deadlock destroying a still-referenced tf.data iterator whose
    worker thread waits for the GIL (seen: ``~IteratorResource`` blocked in
    ``UnboundedThreadPool``), which would hang CI after "N passed". Everything has been
    reported by now, so exit directly with pytest's status.
    """
    if "status" in _EXIT_STATUS and os.environ.get("OCCFACE_TEST_CLEAN_EXIT", "1") == "1":
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])
