"""Shared pytest fixtures.

Tests that need the real face data use the ``data_root`` fixture. In CI (``CI=true``) the data is
always present, so a missing directory is a failure there; elsewhere such tests are skipped.
"""
import os

import numpy as np
import pytest

from occface.paths import data_root as _data_root


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
