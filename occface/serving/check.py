"""The export self-check: reload a SavedModel in a fresh process without occface and compare.

:func:`run_signatures_in_fresh_process` runs signatures with plain TensorFlow in a child
Python started with a clean ``sys.path``; :func:`check_export` compares every signature with
the in-process Keras model(s) it was exported from, so a success shows the export stands alone
and computes what the Keras model computes.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from occface.serving.cascade import make_masked_faces_fn, stored_inpaint_policy
from occface.serving.layout import ExportError, read_metadata
from occface.serving.signatures import make_embed_fn, make_inpaint_fn

__all__ = ["run_signatures_in_fresh_process", "check_export"]

_CHECK_SCRIPT = r"""
import os, sys, json
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
version_dir, inputs_path, outputs_path = sys.argv[1:4]
loaded = tf.saved_model.load(version_dir)
inputs = np.load(inputs_path, allow_pickle=False)
calls = json.loads(str(inputs["__calls__"]))
out = {}
for signature, arg_names in calls.items():
    fn = loaded.signatures[signature]
    result = fn(**{name: tf.constant(inputs[signature + "/" + name]) for name in arg_names})
    for key, value in result.items():
        out[signature + "/" + key] = value.numpy()
np.savez(outputs_path, **out)
print(json.dumps({"occface_imported": "occface" in sys.modules,
                  "signatures": sorted(loaded.signatures.keys())}))
"""


def run_signatures_in_fresh_process(version_dir, calls, timeout=600):
    """Load ``version_dir`` with plain TensorFlow in a new Python process and run signatures.

    The process is started with a clean ``sys.path`` (no repository root, no current directory)
    and the script asserts nothing of occface, so a success shows the export stands alone.

    Parameters
    ----------
    calls : dict
        ``{signature_name: {arg_name: np.ndarray}}``.

    Returns
    -------
    outputs : dict
        ``{signature_name: {output_name: np.ndarray}}``.
    report : dict
        ``{"occface_imported": bool, "signatures": [...]}`` from the child process.
    """
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {f"{sig}/{name}": np.asarray(value)
                  for sig, args in calls.items() for name, value in args.items()}
        arrays["__calls__"] = np.array(json.dumps({sig: list(args) for sig, args in calls.items()}))
        inputs_path = os.path.join(tmp, "inputs.npz")
        outputs_path = os.path.join(tmp, "outputs.npz")
        np.savez(inputs_path, **arrays)
        script = os.path.join(tmp, "check_export.py")
        pathlib.Path(script).write_text(_CHECK_SCRIPT)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        version_dir = pathlib.Path(version_dir).resolve()  # the child runs in another cwd
        proc = subprocess.run([sys.executable, "-I", script, str(version_dir), inputs_path,
                               outputs_path], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=tmp)
        if proc.returncode != 0:
            raise ExportError("loading the export in a fresh process failed:\n"
                              + proc.stderr[-3000:])
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(outputs_path) as data:
            outputs = {}
            for key in data.files:
                sig, name = key.split("/", 1)
                outputs.setdefault(sig, {})[name] = data[key]
    return outputs, report


def check_export(version_dir, *, faces, recognizer=None, generator=None, masks=None,
                 flip_test=None, tolerance=1e-4):
    """Reload an export without occface and compare each signature with the Keras model(s).

    Parameters
    ----------
    version_dir : str or Path
        The written version directory.
    faces : np.ndarray
        uint8 ``(N, s, s, 3)`` real aligned faces to run through the signatures (``N >= 2``).
    recognizer, generator : keras.Model, optional
        The in-process models the export was made from.
    masks : np.ndarray, optional
        float ``(N, s, s, 1)`` hole masks for ``inpaint`` / ``verify_masked``.
    tolerance : float
        Largest accepted absolute difference (embeddings; inpainted pixels may differ by 1 level
        from float rounding).

    Returns
    -------
    dict
        ``{signature: max_abs_diff}`` plus ``"occface_imported"`` (must be False).

    Raises
    ------
    ExportError
        If a difference exceeds the tolerance or the child process imported occface.
    """
    import tensorflow as tf

    meta = read_metadata(version_dir)
    signatures = set(meta.get("signatures", {}))
    faces = np.asarray(faces, np.uint8)
    if flip_test is None:
        flip_test = meta.get("flip_test", True)
    calls, expected = {}, {}
    if "embed" in signatures:
        embed = make_embed_fn(recognizer, flip_test, faces.shape[1])
        calls["embed"] = {"images": faces}
        expected["embed"] = {"embeddings": embed(tf.constant(faces)).numpy()}
        calls["verify"] = {"faces_a": faces, "faces_b": faces[::-1].copy()}
        ea, eb = expected["embed"]["embeddings"], expected["embed"]["embeddings"][::-1]
        scores = np.sum(ea * eb, axis=1)
        expected["verify"] = {"scores": scores, "same": scores >= meta["threshold"]}
    if "inpaint" in signatures:
        if masks is None:
            raise ExportError("check_export needs masks for an inpainting export")
        inpaint = make_inpaint_fn(generator, faces.shape[1])
        calls["inpaint"] = {"images": faces, "masks": np.asarray(masks, np.float32)}
        expected["inpaint"] = {"inpainted": inpaint(tf.constant(faces),
                                                    tf.constant(masks, tf.float32)).numpy()}
    if "verify_masked" in signatures:
        # pair every face with the next one; only the b side carries the holes, so both the
        # inpainted and the untouched branch of the cascade run
        masks_b = np.asarray(masks, np.float32)
        faces_b = np.roll(faces, 1, axis=0)
        masks_b = np.roll(masks_b, 1, axis=0)
        masks_a = np.zeros_like(masks_b)
        prepare = make_masked_faces_fn(make_inpaint_fn(generator, faces.shape[1]),
                                       stored_inpaint_policy(meta))
        embed = make_embed_fn(recognizer, flip_test, faces.shape[1])
        ea = embed(prepare(tf.constant(faces), tf.constant(masks_a))).numpy()
        eb = embed(prepare(tf.constant(faces_b), tf.constant(masks_b))).numpy()
        calls["verify_masked"] = {"faces_a": faces, "faces_b": faces_b, "masks_a": masks_a,
                                  "masks_b": masks_b}
        expected["verify_masked"] = {"scores": np.sum(ea * eb, axis=1)}
    outputs, report = run_signatures_in_fresh_process(version_dir, calls)
    if report["occface_imported"]:
        raise ExportError("the export check imported occface; the SavedModel is not standalone")
    diffs = {}
    for sig, outs in expected.items():
        worst = 0.0
        for name, want in outs.items():
            got = outputs[sig][name]
            if want.dtype == bool:
                # a decision may only flip for scores within float noise of the threshold
                flips = (got != want) & (np.abs(expected["verify"]["scores"] - meta["threshold"])
                                         > tolerance)
                worst = max(worst, float(flips.any()))
            else:
                worst = max(worst, float(np.max(np.abs(got.astype(np.float64)
                                                       - want.astype(np.float64)))))
        diffs[sig] = worst
        # inpainted pixels may round to the neighbouring uint8 level; through the recognizer
        # that moves a cosine score by far less than 1e-3
        limit = {"inpaint": 1.0, "verify_masked": max(tolerance, 1e-3)}.get(sig, tolerance)
        if worst > limit:
            raise ExportError(f"signature {sig!r} differs from the Keras model by {worst:.3g} "
                              f"(limit {limit})")
    diffs["occface_imported"] = report["occface_imported"]
    return diffs
