"""tools/import_model.py: ONNX → .keras and → embed SavedModel (licence recorded), one-line errors."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from occface.models import build_mobilefacenet
from occface.paths import REPO_ROOT
from tests.models.onnx_writer import write_onnx

TOOL = [sys.executable, str(REPO_ROOT / "tools" / "import_model.py")]


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(TOOL + list(args), capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    model = build_mobilefacenet(input_shape=(32, 32, 3), blocks=(1, 1, 1, 1), scale=1,
                                embedding_size=8)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    write_onnx(model, path, fold_bn=True)
    return model, path


def test_onnx_to_keras_and_export(tiny_onnx, tmp_path):
    model, path = tiny_onnx
    out = tmp_path / "m.keras"
    res = _run("--onnx", str(path), "--output", str(out), "--export_dir", str(tmp_path / "exp"),
               "--threshold", "0.3")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["architecture"]["backbone"] == "mobilefacenet"
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    loaded = keras.models.load_model(out)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-4)
    meta = json.loads((tmp_path / "exp" / "1" / "assets.extra" / "occface.json").read_text())
    assert meta["licence"].startswith("insightface pretrained weights: non-commercial")
    assert meta["occface"]["settings"]["source_onnx_sha256"] == report["onnx_sha256"]
    # nothing already written is lost: a second run refuses both
    again = _run("--onnx", str(path), "--output", str(out))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"import_model: error: {out} exists (pass --overwrite to replace it)"]


@pytest.mark.parametrize("args, message", [
    (["--onnx", "nope.onnx", "--output", "x.keras"], "import_model: error: ONNX file not found: "
                                                     "nope.onnx"),
    (["--onnx", "a.onnx"], "import_model: error: give --output (a .keras file) and/or "
                           "--export_dir"),
    (["--onnx", "a.onnx", "--output", "x.h5"], "import_model: error: --output must end in "
                                               ".keras, got x.h5"),
    (["--onnxx", "a.onnx"], "import_model: error: Unknown command line flag 'onnxx'. Did you "
                            "mean: onnx ?"),
])
def test_one_line_errors(tmp_path, args, message):
    res = subprocess.run(TOOL + args, capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [message]
