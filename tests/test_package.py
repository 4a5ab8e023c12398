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


def test_write_json_atomic_roundtrip_and_numpy(tmp_path):
    import json

    import numpy as np

    from occface.utils import write_json
    target = tmp_path / "sub" / "r.json"
    write_json(target, {"a": np.float32(0.5), "b": np.arange(3)})
    assert json.loads(target.read_text()) == {"a": 0.5, "b": [0, 1, 2]}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    # a failing serialisation leaves the previous file intact and no temp files behind
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert json.loads(target.read_text())["a"] == 0.5
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_run_metadata_has_settings_and_commit():
    from occface.utils import run_metadata
    meta = run_metadata({"seed": 3})
    assert meta["settings"] == {"seed": 3}
    assert "git_commit" in meta and "tensorflow" in meta
