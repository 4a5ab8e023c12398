"""Save small occface models under TensorFlow, with their outputs, for the cross-backend check.

    KERAS_BACKEND=tensorflow .venv/bin/python tests_backends/tf_reference.py OUT_DIR

writes ``OUT_DIR/{layers,recognizer,mobilefacenet}.keras`` and ``OUT_DIR/reference.npz`` (the
inputs and each model's inference outputs under TensorFlow). ``tests_backends`` loads them under
JAX / PyTorch and compares.
"""
import os
import pathlib
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests_backends.models_spec import build_all  # noqa: E402


def main(out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    assert keras.backend.backend() == "tensorflow"
    arrays = {}
    for name, (model, inputs) in build_all().items():
        model.save(out / f"{name}.keras")
        outputs = model(inputs, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for i, x in enumerate(inputs if isinstance(inputs, list) else [inputs]):
            arrays[f"{name}/in{i}"] = np.asarray(x)
        for i, y in enumerate(outputs):
            arrays[f"{name}/out{i}"] = np.asarray(y)
    np.savez(out / "reference.npz", **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
