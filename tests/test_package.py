import os

import pytest

import occface
from occface import paths


def test_version_is_semver():
    parts = occface.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)


def test_data_root_env_missing_is_named(monkeypatch, tmp_path):
    missing = tmp_path / "nope"
    monkeypatch.setenv("OCCFACE_DATA", str(missing))
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(FileNotFoundError, match="nope"):
        paths.data_root()
    assert paths.data_root(required=False) is None


def test_data_root_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCFACE_DATA", str(tmp_path))
    assert paths.data_root() == tmp_path
