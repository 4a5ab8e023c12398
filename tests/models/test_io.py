"""occface.models.io: the one path rule, the loaders, custom-object registration."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from occface.models import io


def _recognizer(size=16, dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    out = keras.layers.Dense(dim)(keras.layers.Flatten()(inp))
    return keras.Model(inp, out)


def _touch_savedmodel(directory, metadata=None):
    directory.mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"")
    if metadata is not None:
        (directory / io.METADATA_FILE).parent.mkdir()
        (directory / io.METADATA_FILE).write_text(json.dumps(metadata))
    return directory


def test_path_rule_files_and_model_dirs(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    assert io.resolve_model_path(tmp_path / "m.keras") == io.ModelPath(tmp_path / "m.keras",
                                                                       "keras")
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    assert io.resolve_model_path(run) == io.ModelPath(run / "model.keras", "keras", run)
    (run / "best" / "model.keras").write_bytes(b"")
    assert io.resolve_model_path(run).path == run / "best" / "model.keras"  # best preferred
    assert io.resolve_model_path(run, checkpoint="last").path == run / "model.keras"
    idgan = tmp_path / "idgan"
    idgan.mkdir()
    (idgan / "generator.keras").write_bytes(b"")
    assert io.resolve_model_path(idgan, filename="generator.keras").path == \
        idgan / "generator.keras"


def test_path_rule_exports_newest_version_with_a_savedmodel(tmp_path):
    base = tmp_path / "exp"
    _touch_savedmodel(base / "2", {"threshold": 0.2})
    _touch_savedmodel(base / "10", {"threshold": 0.4})
    (base / "11").mkdir()  # a numbered folder without a SavedModel is not a version to load
    (base / ".tmp-12-1-x").mkdir()
    where = io.resolve_model_path(base)
    assert where == io.ModelPath(base / "10", "savedmodel")
    assert where.metadata == {"threshold": 0.4}
    assert io.latest_version_dir(base) == base / "10" == io.latest_version_dir(base / "10")
    assert io.existing_versions(base) == [2, 10, 11]
    assert io.resolve_model_path(base / "2").metadata == {"threshold": 0.2}
    legacy = _touch_savedmodel(tmp_path / "old" / "saved_model").parent
    assert io.resolve_model_path(legacy) == io.ModelPath(legacy / "saved_model", "savedmodel")
    assert io.ModelPath(tmp_path / "m.keras", "keras").metadata == {}


def test_path_rule_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        io.resolve_model_path(tmp_path / "nope")
    assert str(err.value) == f"model not found: {tmp_path / 'nope'}"
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError) as err:
        io.resolve_model_path(tmp_path / "x.txt")
    assert str(err.value) == (f"unknown model format: {tmp_path / 'x.txt'} (expected a .keras "
                              "file, a training model_dir or a SavedModel directory)")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as err:
        io.resolve_model_path(tmp_path / "empty", filename="generator.keras")
    assert str(err.value) == (f"unknown model format: directory {tmp_path / 'empty'} has no "
                              "generator.keras, best/generator.keras or saved_model.pb")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no best checkpoint"):
        io.resolve_model_path(tmp_path / "run", checkpoint="best")
    with pytest.raises(ValueError, match="checkpoint must be"):
        io.resolve_model_path(tmp_path / "run", checkpoint="newest")
    with pytest.raises(FileNotFoundError, match="no SavedModel found"):
        io.latest_version_dir(tmp_path / "empty")


def test_load_keras_model_and_generator_round_trip(tmp_path):
    from occface.inpainting import build_generator
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    best, last = _recognizer(seed=1), _recognizer(seed=2)
    best.save(run / "best" / "model.keras")
    last.save(run / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(io.load_keras_model(run)(x), best(x), atol=1e-6)
    np.testing.assert_allclose(io.load_keras_model(run, checkpoint="last")(x), last(x), atol=1e-6)
    emb = io.load_embedding_model(run)
    assert emb.info["checkpoint"] == "best/model.keras" and emb.saved_model is None
    np.testing.assert_allclose(emb(x), best(x), atol=1e-5)

    generator = build_generator(16, width=4)
    (tmp_path / "idgan").mkdir()
    generator.save(tmp_path / "idgan" / "generator.keras")
    masks = np.zeros((2, 16, 16, 1), np.float32)
    masks[:, 4:9, 4:9] = 1
    for source in (tmp_path / "idgan", tmp_path / "idgan" / "generator.keras"):
        np.testing.assert_allclose(io.load_generator(source)([x, masks]),
                                   generator([x, masks]), atol=1e-4)
    with pytest.raises(ValueError) as err:
        io.load_generator(run / "model.keras")
    assert str(err.value) == (f"{run / 'model.keras'} is not an inpainting generator (expects "
                              "[image, mask] inputs)")
    with pytest.raises(FileNotFoundError, match="model not found"):
        io.load_generator(tmp_path / "nothing")
    (tmp_path / "bad.keras").write_text("not a zip")
    with pytest.raises(ValueError, match="cannot load generator .*bad.keras"):
        io.load_generator(tmp_path / "bad.keras")


def test_custom_objects_register_without_the_upper_floors(tmp_path):
    """A generator saved with its hole layers loads in a process that imported only
    occface.models.io: the models floor needs nothing above it (``occface.choices``, the
    TF-free list of allowed settings, is the floor below everything)."""
    from occface.inpainting import build_generator
    names = io.register_custom_objects()
    assert {"occface>HoleFill", "occface>HoleComposite", "occface>LCD", "occface>SAM",
            "occface>Recognizer"} <= set(names)
    build_generator(16, width=4).save(tmp_path / "generator.keras")
    script = textwrap.dedent(f"""
        import sys
        from occface.models.io import load_generator
        load_generator({str(tmp_path / "generator.keras")!r})
        print(sorted(m for m in sys.modules if m.startswith("occface.") and
                     m.split(".")[1] not in ("models", "layers", "losses", "choices")))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
