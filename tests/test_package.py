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


# ---------------------------------------------------------------------------------------------
# The import graph points down
# ---------------------------------------------------------------------------------------------

#: Packages (first component under occface/) below each floor may not import what is above.
_BELOW_MODELS = {"paths", "utils", "choices", "losses", "layers", "models"}
_BELOW_SERVING = _BELOW_MODELS | {"data", "evaluation", "train", "inpainting"}
_SERVING = {"serving", "export", "export_tool"}


def _occface_imports():
    """``(file, line, module, name)`` for every occface import in the package (any depth), and
    the string imports (``importlib.import_module`` / ``__import__``)."""
    import ast
    root = paths.REPO_ROOT / "occface"
    imports, string_imports = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(paths.REPO_ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Import):
                imports += [(rel, node.lineno, a.name, None) for a in node.names
                            if a.name.startswith("occface")]
            elif isinstance(node, ast.ImportFrom) and node.module == "occface":
                imports += [(rel, node.lineno, f"occface.{a.name}", None) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("occface."):
                imports += [(rel, node.lineno, node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Call):
                func = node.func
                called = getattr(func, "attr", None) or getattr(func, "id", None)
                if called in ("import_module", "__import__"):
                    string_imports.append(f"{rel}:{node.lineno}")
    return imports, string_imports


def _floor(rel_or_module):
    parts = rel_or_module.replace("/", ".").removesuffix(".py").split(".")
    return parts[1] if len(parts) > 1 else ""


def test_imports_point_down_and_name_only_public_objects():
    imports, string_imports = _occface_imports()
    assert string_imports == []
    upward, private = [], []
    for rel, line, module, name in imports:
        here, there = _floor(rel), _floor(module)
        if here in _BELOW_MODELS and there not in _BELOW_MODELS | {""}:
            upward.append(f"{rel}:{line} imports {module}")
        if here in _BELOW_SERVING and there in _SERVING:
            upward.append(f"{rel}:{line} imports {module}")
        own_module = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        if name and name.startswith("_") and module != own_module:
            private.append(f"{rel}:{line} imports {module}.{name}")
    assert upward == [] and private == []
