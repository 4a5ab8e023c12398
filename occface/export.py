"""SavedModel export for TF Serving: named signatures, versioned layout, atomic writes, self-check.

Three kinds of export, all loadable by TF Serving or by ``tf.saved_model.load`` in a program that
has never heard of occface (the custom layers are traced into the graph):

``embed``
    ``embed(images: uint8 [N, 112, 112, 3]) -> {"embeddings": float32 [N, D]}``: aligned RGB faces
    in, L2-normalised embeddings out. Resizing to the model's own input size, normalisation and
    flip-test (embedding of the face + embedding of its mirror image) happen inside the graph.
    ``verify(faces_a, faces_b) -> {"scores", "same", "threshold"}``: cosine similarity of the two
    batches, row by row, and the decision at the threshold stored in the export.
``inpaint``
    ``inpaint(images: uint8 [N, 112, 112, 3], masks: float32 [N, 112, 112, 1]) ->
    {"inpainted": uint8 [N, 112, 112, 3]}`` with mask 1 = hole, on the same aligned faces as
    ``embed``. A generator trained at another size ``S`` (64 on CPU, 128 in the paper) is wrapped:
    face and mask are resized to ``S`` inside the graph and the filled hole is resized back; known
    pixels are always copied through exactly.
``cascade``
    Everything above plus ``verify_masked(faces_a, faces_b, masks_a, masks_b)``, which inpaints a
    face before embedding it when its mask is non-empty and the stored policy says inpainting helps
    for that occlusion region (upper face / lower face / other, read off the mask in-graph).

Layout: ``export_dir/<version>/`` (TF Serving's convention) with ``assets.extra/occface.json``
holding the metadata (threshold and how it was calibrated, model settings, policy evidence, git
commit). A version is written to a hidden temporary directory and renamed into place, so a killed
export never leaves a half-written model where a server would pick it up, and an existing version is
only replaced when ``overwrite=True``.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ALIGNED_SIZE = 112
METADATA_FILE = os.path.join("assets.extra", "occface.json")


class ExportError(RuntimeError):
    """Raised when an export cannot be written or fails its self-check."""


# --------------------------------------------------------------------------------------------
# Versioned, atomic directory handling
# --------------------------------------------------------------------------------------------

def existing_versions(export_dir):
    """Sorted list of the integer version sub-directories of ``export_dir`` (TF Serving layout)."""
    export_dir = pathlib.Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version(export_dir, version=None, overwrite=False):
    """Pick the version number to write and check that writing it is allowed.

    Parameters
    ----------
    export_dir : str or Path
        The model's base path (what ``tensorflow_model_server --model_base_path`` points at).
    version : int or None
        Explicit version; ``None`` means one more than the newest existing version (1 if none).
    overwrite : bool
        Allow replacing an existing version.

    Raises
    ------
    ExportError
        If the version exists and ``overwrite`` is false, or ``version`` is not a positive int.
    """
    if version is None:
        versions = existing_versions(export_dir)
        return (versions[-1] + 1) if versions else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ExportError(f"export version must be a positive integer, got {version!r}")
    target = pathlib.Path(export_dir) / str(int(version))
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; pass overwrite=True (--overwrite) to replace "
                          "it, or choose another version")
    return int(version)


def _write_version_atomically(export_dir, version, write_fn, overwrite):
    """Run ``write_fn(tmp_dir)`` and move the finished directory to ``export_dir/<version>``."""
    export_dir = pathlib.Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    target = export_dir / str(version)
    _remove_stale_temporaries(export_dir)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=export_dir))
    try:
        write_fn(tmp)
        if target.exists():
            if not overwrite:  # appeared while we were writing
                raise ExportError(f"{target} appeared during the export; not overwritten")
            old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_temporaries(export_dir):
    """Delete ``.tmp-*`` / ``.old-*`` directories left by exports whose process has died."""
    for entry in pathlib.Path(export_dir).iterdir():
        parts = entry.name.split("-")
        if entry.is_dir() and parts[0] in (".tmp", ".old") and len(parts) >= 4 \
                and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_metadata(version_dir):
    """The ``occface.json`` metadata dict stored with an export (``{}`` if absent)."""
    path = pathlib.Path(version_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def latest_version_dir(path):
    """Given a base path or a version directory, return the directory holding ``saved_model.pb``."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = existing_versions(path)
    if not versions:
        raise FileNotFoundError(f"no SavedModel found at {path} (no saved_model.pb and no numbered "
                                "version sub-directories)")
    return path / str(versions[-1])


# --------------------------------------------------------------------------------------------
# Graph functions
# --------------------------------------------------------------------------------------------

def _model_input_size(model):
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[3] != 3:
        raise ExportError(f"expected an image model with input (N, H, W, 3), got {shape}")
    return int(shape[1]), int(shape[2])


def make_embed_fn(model, flip_test=True, aligned_size=ALIGNED_SIZE):
    """Graph function: uint8 aligned faces ``(N, s, s, 3)`` → L2-normalised embeddings ``(N, D)``.

    The face is resized (bilinear, antialiased) to the model's input size when that differs from
    ``aligned_size``; with ``flip_test`` the embeddings of the face and of its mirror image are
    summed before normalisation.
    """
    import tensorflow as tf

    height, width = _model_input_size(model)

    def embed(images):
        x = tf.cast(images, tf.float32)
        if (height, width) != (aligned_size, aligned_size):
            x = tf.image.resize(x, (height, width), method="bilinear", antialias=True)
        emb = model(x, training=False)
        if flip_test:
            emb = emb + model(tf.reverse(x, axis=[2]), training=False)
        emb = tf.cast(emb, tf.float32)
        return tf.math.l2_normalize(emb, axis=1)

    return embed


def _generator_input_size(generator):
    shape = generator.input_shape
    shape = shape[0] if isinstance(shape, list) else shape
    if len(shape) != 4 or shape[3] != 3:
        raise ExportError(f"expected a generator with inputs [(N, S, S, 3), (N, S, S, 1)], got "
                          f"{generator.input_shape}")
    return int(shape[1]), int(shape[2])


def make_inpaint_fn(generator, size=None):
    """Graph function: uint8 images ``(N, s, s, 3)`` + float masks ``(N, s, s, 1)`` (1 = hole)
    → completed uint8 images ``(N, s, s, 3)``; known pixels are copied through exactly.

    ``s`` is ``size`` (default: the generator's own input side ``S``). When ``s != S`` the face
    and the mask are resized to ``S`` inside the graph (area-averaged; a generator pixel counts as
    hole when any part of it is), the generator fills the hole, and its output is resized back
    (bilinear) and composited at ``s`` with the original mask, so a 64-px CPU generator serves
    112-px aligned faces.
    """
    import tensorflow as tf

    gen_h, gen_w = _generator_input_size(generator)

    def inpaint(images, masks):
        x = tf.cast(images, tf.float32)
        m = tf.cast(masks > 0.5, tf.float32)
        if size is None or (int(size), int(size)) == (gen_h, gen_w):
            out = generator([x, m], training=False)
        else:
            xs = tf.image.resize(x, (gen_h, gen_w), method="area")
            ms = tf.cast(tf.image.resize(m, (gen_h, gen_w), method="area") > 1e-3, tf.float32)
            out = generator([xs, ms], training=False)
            out = tf.image.resize(tf.cast(out, tf.float32), (int(size), int(size)),
                                  method="bilinear")
        out = m * tf.cast(out, tf.float32) + (1.0 - m) * x
        return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)

    return inpaint


#: Occlusion regions the cascade decides for, and the synthetic occlusion kinds that measure them.
OCCLUSION_REGIONS = ("upper", "lower", "other")
KIND_REGIONS = {"sunglasses": "upper", "upper": "upper", "mask": "lower", "lower": "lower",
                "block": "other", "left": "other", "right": "other"}
#: Row (fraction of the aligned face height) between the eyes (0.46) and the nose tip (0.64).
REGION_SPLIT_ROW = 0.55
#: Share of the mask on one side of that row that makes it an upper / lower occlusion.
REGION_SHARE = 0.8


def occlusion_region(masks, split_row=REGION_SPLIT_ROW, share=REGION_SHARE):
    """Graph function: masks ``(N, s, s, 1)`` (1 = occluded) → region index ``(N,)`` int32.

    0 = ``"upper"`` (at least ``share`` of the hole above ``split_row``·s: sunglasses, hair),
    1 = ``"lower"`` (at least ``share`` below it: face masks, scarves, hands at the mouth),
    2 = ``"other"`` (anything in between, and empty masks).
    """
    import tensorflow as tf
    masks = tf.cast(masks, tf.float32)
    rows = tf.shape(masks)[1]
    upper_rows = tf.cast(tf.range(rows), tf.float32) < split_row * tf.cast(rows, tf.float32)
    per_row = tf.reduce_sum(masks, axis=[2, 3])  # (N, s)
    total = tf.reduce_sum(per_row, axis=1)
    upper = tf.reduce_sum(tf.where(upper_rows[None], per_row, 0.0), axis=1)
    frac = upper / tf.maximum(total, 1e-6)
    return tf.where(total <= 0.0, 2,
                    tf.where(frac >= share, 0, tf.where(frac <= 1.0 - share, 1, 2)))


def normalize_inpaint_policy(policy):
    """``bool`` or ``{region: bool}`` → ``{region: bool}`` over :data:`OCCLUSION_REGIONS`."""
    if isinstance(policy, dict):
        unknown = sorted(set(policy) - set(OCCLUSION_REGIONS))
        missing = sorted(set(OCCLUSION_REGIONS) - set(policy))
        if unknown or missing:
            raise ExportError(f"inpaint_policy needs exactly the regions {OCCLUSION_REGIONS}; "
                              f"unknown {unknown}, missing {missing}")
        return {r: bool(policy[r]) for r in OCCLUSION_REGIONS}
    return {r: bool(policy) for r in OCCLUSION_REGIONS}


def stored_inpaint_policy(metadata):
    """The ``{region: bool}`` policy of a cascade export's metadata (exports written before
    per-region policies hold only the bool ``inpaint_occluded_faces``)."""
    return normalize_inpaint_policy(metadata.get("inpaint_policy",
                                                 bool(metadata.get("inpaint_occluded_faces"))))


def make_masked_faces_fn(inpaint, policy):
    """Graph function of the cascade: faces ``(N, s, s, 3)`` uint8 + masks ``(N, s, s, 1)`` →
    the faces to embed.

    ``policy`` is a bool (all occlusions) or ``{region: bool}`` over :data:`OCCLUSION_REGIONS`:
    a face whose mask is non-empty is inpainted when its region's (:func:`occlusion_region`)
    entry is true, else embedded as given.
    """
    import tensorflow as tf
    policy = normalize_inpaint_policy(policy)
    table = tf.constant([policy[r] for r in OCCLUSION_REGIONS])

    def prepare(faces, masks):
        if not any(policy.values()):
            return faces
        has_hole = tf.reduce_max(masks, axis=[1, 2, 3]) > 0.5
        use = tf.logical_and(has_hole, tf.gather(table, occlusion_region(masks)))
        filled = inpaint(faces, masks)
        return tf.where(use[:, None, None, None], filled, faces)

    return prepare


# --------------------------------------------------------------------------------------------
# Exporters
# --------------------------------------------------------------------------------------------

def export_model(export_dir, *, kind, recognizer=None, generator=None, version=None,
                 overwrite=False, flip_test=True, threshold=0.3, inpaint_policy=None,
                 metadata=None, aligned_size=ALIGNED_SIZE, before_publish=None):
    """Export a recognizer, a generator, or both as one TF-Serving-ready SavedModel version.

    Parameters
    ----------
    export_dir : str or Path
        Base path; the model is written to ``export_dir/<version>/``.
    kind : {"embed", "inpaint", "cascade"}
        Which signatures to write (see the module docstring).
    recognizer : keras.Model, optional
        Images ``(N, H, W, 3)`` in [0, 255] → embeddings ``(N, D)``; needed for embed/cascade.
    generator : keras.Model, optional
        ``[images (N, S, S, 3) in [0, 255], masks (N, S, S, 1)]`` → images; needed for
        inpaint/cascade. The signatures take ``aligned_size`` faces and resize to ``S`` inside the
        graph when ``S`` differs (:func:`make_inpaint_fn`).
    version, overwrite
        See :func:`resolve_version`.
    flip_test : bool
        Sum the embeddings of each face and its mirror image inside the graph.
    threshold : float
        Cosine-similarity threshold used by ``verify``; store how it was chosen in ``metadata``.
    inpaint_policy : bool or dict, optional
        Cascade only: whether ``verify_masked`` inpaints occluded faces before embedding, for all
        occlusions (bool) or per region (``{"upper": bool, "lower": bool, "other": bool}``, see
        :func:`occlusion_region`). Record the measured evidence for the choice in
        ``metadata["cascade_evidence"]``.
    metadata : dict, optional
        Extra JSON-serialisable information (training config, evidence). A ``"calibration"``
        entry (how the threshold was chosen, with its accuracy/FAR) is also copied to the top
        level of the stored metadata.
    before_publish : callable, optional
        ``f(written_dir)`` called on the finished SavedModel before it is moved into place; if it
        raises, nothing is published (use it for the self-check, :func:`check_export`).

    Returns
    -------
    pathlib.Path
        The written version directory.
    """
    import keras
    import tensorflow as tf

    if kind not in ("embed", "inpaint", "cascade"):
        raise ExportError(f"kind must be one of embed, inpaint, cascade; got {kind!r}")
    if kind in ("embed", "cascade") and recognizer is None:
        raise ExportError(f"kind={kind!r} needs a recognizer model")
    if kind in ("inpaint", "cascade") and generator is None:
        raise ExportError(f"kind={kind!r} needs an inpainting generator")
    if kind == "cascade" and inpaint_policy is None:
        raise ExportError("kind='cascade' needs inpaint_policy (bool or per region) chosen from "
                          "measured verification accuracy")
    version = resolve_version(export_dir, version, overwrite)

    archive = keras.export.ExportArchive()
    face_spec = lambda name: tf.TensorSpec([None, aligned_size, aligned_size, 3], tf.uint8, name)
    info = {"kind": kind, "aligned_size": aligned_size, "signatures": {}}

    if recognizer is not None and kind != "inpaint":
        archive.track(recognizer)
        embed = make_embed_fn(recognizer, flip_test, aligned_size)
        threshold_var = tf.Variable(float(threshold), trainable=False, name="verify_threshold")
        archive.add_variable_collection("verify_threshold", [threshold_var])

        def embed_endpoint(images):
            return {"embeddings": embed(images)}

        def verify_endpoint(faces_a, faces_b):
            scores = tf.reduce_sum(embed(faces_a) * embed(faces_b), axis=1)
            return {"scores": scores, "same": scores >= threshold_var,
                    "threshold": tf.fill(tf.shape(scores), threshold_var)}

        archive.add_endpoint("embed", embed_endpoint, input_signature=[face_spec("images")])
        archive.add_endpoint("verify", verify_endpoint,
                             input_signature=[face_spec("faces_a"), face_spec("faces_b")])
        info["signatures"]["embed"] = "images uint8 [N,%d,%d,3] -> embeddings float32 [N,D], " \
                                      "L2-normalised" % (aligned_size, aligned_size)
        info["signatures"]["verify"] = "faces_a, faces_b uint8 -> scores float32 [N], same bool " \
                                       "[N], threshold float32 [N]"
        info.update(threshold=float(threshold), flip_test=bool(flip_test),
                    model_input_size=list(_model_input_size(recognizer)))
        from occface.models.recognizer import Recognizer, recognizer_config
        if isinstance(recognizer, Recognizer):  # lets occface.models.recognizer_from_export
            info["recognizer_config"] = recognizer_config(recognizer)  # rebuild it

    if generator is not None and kind != "embed":
        archive.track(generator)
        gen_h, gen_w = _generator_input_size(generator)
        inpaint = make_inpaint_fn(generator, aligned_size)
        image_spec = tf.TensorSpec([None, aligned_size, aligned_size, 3], tf.uint8, "images")
        mask_spec = tf.TensorSpec([None, aligned_size, aligned_size, 1], tf.float32, "masks")
        archive.add_endpoint("inpaint", lambda images, masks: {"inpainted": inpaint(images, masks)},
                             input_signature=[image_spec, mask_spec])
        info["generator_input_size"] = [gen_h, gen_w]
        info["signatures"]["inpaint"] = "images uint8 [N,%d,%d,3], masks float32 [N,%d,%d,1] " \
                                        "(1 = hole) -> inpainted uint8 [N,%d,%d,3]" \
                                        % ((aligned_size,) * 6)

    if kind == "cascade":
        region_policy = normalize_inpaint_policy(inpaint_policy)
        use_inpainting = any(region_policy.values())
        prepare = make_masked_faces_fn(inpaint, region_policy)

        def verify_masked(faces_a, faces_b, masks_a, masks_b):
            ea = embed(prepare(faces_a, masks_a))
            eb = embed(prepare(faces_b, masks_b))
            scores = tf.reduce_sum(ea * eb, axis=1)
            return {"scores": scores, "same": scores >= threshold_var,
                    "threshold": tf.fill(tf.shape(scores), threshold_var)}

        mask_spec = lambda name: tf.TensorSpec([None, aligned_size, aligned_size, 1], tf.float32,
                                               name)
        archive.add_endpoint("verify_masked", verify_masked,
                             input_signature=[face_spec("faces_a"), face_spec("faces_b"),
                                              mask_spec("masks_a"), mask_spec("masks_b")])
        info["signatures"]["verify_masked"] = "faces_a, faces_b uint8, masks_a, masks_b float32 " \
                                              "(1 = occluded) -> scores, same, threshold"
        info["inpaint_occluded_faces"] = use_inpainting
        info["inpaint_policy"] = region_policy
        share = f">= {REGION_SHARE:.0%} of the mask"
        info["occlusion_regions"] = {
            "upper": f"{share} above row {REGION_SPLIT_ROW} * size (sunglasses)",
            "lower": f"{share} below it (face masks, scarves)",
            "other": "anything else (blocks, hands, half faces)"}

    from occface.utils import run_metadata
    if metadata and "calibration" in metadata:
        info["calibration"] = metadata["calibration"]
    info["occface"] = run_metadata(metadata or {})

    def write(tmp_dir):
        archive.write_out(str(tmp_dir), verbose=False)
        meta_path = pathlib.Path(tmp_dir) / METADATA_FILE
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        from occface.utils import write_json
        write_json(meta_path, info)
        if before_publish is not None:
            before_publish(pathlib.Path(tmp_dir))

    return _write_version_atomically(export_dir, version, write, overwrite)


# --------------------------------------------------------------------------------------------
# Self-check in a fresh process without occface
# --------------------------------------------------------------------------------------------

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
