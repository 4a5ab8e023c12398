"""SavedModel export (occface.serving): signatures vs the Keras model in a process without occface,
versioning, overwrite refusal, atomicity under SIGKILL, permissions, the occface.export shim."""
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from occface import serving


@keras.saving.register_keras_serializable(package="occface_test")
class _Doubler(keras.layers.Layer):
    """A custom layer the loading process has no code for."""

    def call(self, x):
        return x * 2.0


def _tiny_recognizer(size=32, dim=8):
    inp = keras.Input((size, size, 3))
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(h)
    h = _Doubler()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, keras.layers.Dense(dim)(h))


def _tiny_generator(size=16):
    img = keras.Input((size, size, 3))
    mask = keras.Input((size, size, 1))
    h = keras.layers.Concatenate()([img, mask])
    out = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(h)
    out = keras.layers.Rescaling(255.0)(out)
    return keras.Model([img, mask], out)


@pytest.fixture(scope="module")
def faces():
    return np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)


def test_embed_export_matches_keras_in_fresh_process(tmp_path, faces):
    model = _tiny_recognizer(size=32)  # aligned faces are 16 px here: resize happens in-graph
    vdir = serving.export_model(tmp_path / "m", kind="embed", recognizer=model, threshold=0.25,
                                aligned_size=16, metadata={"note": "test"})
    assert vdir == tmp_path / "m" / "1"
    diffs = serving.check_export(vdir, faces=faces, recognizer=model)
    assert diffs["embed"] < 1e-4 and diffs["occface_imported"] is False
    meta = serving.read_metadata(vdir)
    assert meta["threshold"] == 0.25 and meta["model_input_size"] == [32, 32]
    assert meta["occface"]["settings"] == {"note": "test"}

    # The same request body TF Serving's REST API takes: {"signature_name": "embed",
    # "instances": [<face as nested lists>, ...]} -> run it against the loaded SavedModel.
    outputs, report = serving.run_signatures_in_fresh_process(
        vdir, {"embed": {"images": np.asarray(faces.tolist(), np.uint8)}})
    emb = outputs["embed"]["embeddings"]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # flip-test by hand: sum of the embeddings of the resized face and its mirror
    x = tf.image.resize(tf.cast(faces, tf.float32), (32, 32), antialias=True)
    ref = model(x).numpy() + model(x[:, :, ::-1]).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(emb, ref, atol=1e-5)


def test_verify_signature_decides_at_stored_threshold(tmp_path, faces):
    model = _tiny_recognizer(size=16)
    vdir = serving.export_model(tmp_path / "m", kind="embed", recognizer=model, threshold=0.9,
                                aligned_size=16)
    pair_b = faces.copy()
    pair_b[1] = faces[2]
    outputs, _ = serving.run_signatures_in_fresh_process(
        vdir, {"verify": {"faces_a": faces, "faces_b": pair_b}})
    scores, same = outputs["verify"]["scores"], outputs["verify"]["same"]
    np.testing.assert_allclose(scores[[0, 2]], 1.0, atol=1e-5)  # identical faces
    np.testing.assert_array_equal(same, scores >= 0.9)
    np.testing.assert_allclose(outputs["verify"]["threshold"], 0.9)


def test_inpaint_export_keeps_known_pixels(tmp_path, faces):
    gen = _tiny_generator(16)
    masks = np.zeros((3, 16, 16, 1), np.float32)
    masks[:, 4:10, 5:12] = 1
    vdir = serving.export_model(tmp_path / "g", kind="inpaint", generator=gen, aligned_size=16)
    diffs = serving.check_export(vdir, faces=faces, generator=gen, masks=masks)
    assert diffs["inpaint"] <= 1.0
    outputs, _ = serving.run_signatures_in_fresh_process(
        vdir, {"inpaint": {"images": faces, "masks": masks}})
    out = outputs["inpaint"]["inpainted"]
    known = masks[..., 0] == 0
    np.testing.assert_array_equal(out[known], faces[known])


def test_inpaint_export_resizes_a_smaller_generator(tmp_path):
    """A generator trained at 16 px serves 32-px faces: the hole is filled from the 16-px output
    resized back, the known pixels stay exact, and a hole pixel at 32 px becomes a hole pixel of
    the 16-px input (any overlap counts)."""
    gen = _tiny_generator(16)
    faces = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((2, 32, 32, 1), np.float32)
    masks[:, 9:20, 7:18] = 1  # odd edges: straddles 16-px pixels
    vdir = serving.export_model(tmp_path / "g", kind="inpaint", generator=gen, aligned_size=32)
    assert serving.read_metadata(vdir)["generator_input_size"] == [16, 16]
    diffs = serving.check_export(vdir, faces=faces, generator=gen, masks=masks)
    assert diffs["inpaint"] <= 1.0
    outputs, _ = serving.run_signatures_in_fresh_process(
        vdir, {"inpaint": {"images": faces, "masks": masks}})
    out = outputs["inpaint"]["inpainted"]
    assert out.shape == faces.shape
    known = masks[..., 0] == 0
    np.testing.assert_array_equal(out[known], faces[known])
    # by hand: 2x2 means, hole if any of the 4 is a hole, generator, bilinear x2, composite
    small = faces.astype(np.float32).reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    small_mask = (masks.reshape(2, 16, 2, 16, 2, 1).max(axis=(2, 4)) > 0).astype(np.float32)
    assert small_mask[0, 4:10, 3:9].all() and small_mask[0].sum() == 36
    filled = gen([small, small_mask]).numpy()
    up = tf.image.resize(filled, (32, 32), method="bilinear").numpy()
    want = np.clip(np.round(masks * up + (1 - masks) * faces), 0, 255)
    assert np.max(np.abs(out.astype(np.float32) - want)) <= 1.0


@pytest.mark.parametrize("inpaint_first", [False, True])
def test_cascade_verify_masked_follows_the_stored_policy(tmp_path, inpaint_first):
    recognizer, gen = _tiny_recognizer(size=32), _tiny_generator(16)
    faces = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((3, 32, 32, 1), np.float32)
    masks[0, 10:26, 6:22] = 1  # only the first face of the b batch is occluded
    vdir = serving.export_model(tmp_path / "c", kind="cascade", recognizer=recognizer,
                                generator=gen, threshold=0.5, inpaint_policy=inpaint_first,
                                aligned_size=32)
    meta = serving.read_metadata(vdir)
    assert meta["inpaint_occluded_faces"] is inpaint_first
    assert meta["inpaint_policy"] == {r: inpaint_first for r in serving.OCCLUSION_REGIONS}
    diffs = serving.check_export(vdir, faces=faces, recognizer=recognizer, generator=gen,
                                 masks=masks)
    assert diffs["verify_masked"] <= 1e-3
    no_masks = np.zeros_like(masks)
    outputs, _ = serving.run_signatures_in_fresh_process(vdir, {
        "verify_masked": {"faces_a": faces, "faces_b": faces, "masks_a": no_masks,
                          "masks_b": masks},
        "inpaint": {"images": faces, "masks": masks},
        "embed": {"images": faces}})
    scores = outputs["verify_masked"]["scores"]
    np.testing.assert_allclose(scores[1:], 1.0, atol=1e-5)  # no hole: identical faces
    emb = outputs["embed"]["embeddings"]
    if inpaint_first:  # the occluded face is embedded after inpainting
        filled = outputs["inpaint"]["inpainted"]
        e_filled = serving.make_embed_fn(recognizer, True, 32)(tf.constant(filled[:1])).numpy()
        np.testing.assert_allclose(scores[0], np.sum(emb[0] * e_filled[0]), atol=1e-3)
        assert scores[0] < 1.0 - 1e-4
    else:  # embedded as given: the mask is ignored
        np.testing.assert_allclose(scores[0], 1.0, atol=1e-5)
    np.testing.assert_array_equal(outputs["verify_masked"]["same"], scores >= 0.5)
    with pytest.raises(serving.ExportError, match="inpaint_policy"):
        serving.export_model(tmp_path / "d", kind="cascade", recognizer=recognizer, generator=gen,
                             aligned_size=32)


def test_versions_and_overwrite_refusal(tmp_path):
    model = _tiny_recognizer(size=16)
    base = tmp_path / "m"
    v1 = serving.export_model(base, kind="embed", recognizer=model, aligned_size=16, version=1)
    stamp = (v1 / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(serving.ExportError, match="already exists.*overwrite"):
        serving.export_model(base, kind="embed", recognizer=model, aligned_size=16, version=1)
    assert (v1 / "saved_model.pb").stat().st_mtime_ns == stamp  # untouched
    v2 = serving.export_model(base, kind="embed", recognizer=model, aligned_size=16)
    assert v2.name == "2" and serving.existing_versions(base) == [1, 2]
    serving.export_model(base, kind="embed", recognizer=model, aligned_size=16, version=1,
                         overwrite=True)
    assert serving.existing_versions(base) == [1, 2]
    assert not [p for p in base.iterdir() if p.name.startswith(".")]  # no leftovers
    with pytest.raises(serving.ExportError, match="positive integer"):
        serving.resolve_version(base, version=0)
    with pytest.raises(serving.ExportError, match="needs a recognizer"):
        serving.export_model(base, kind="embed")


def test_killed_export_leaves_no_version(tmp_path):
    """SIGKILL after the SavedModel files are written but before the rename: no version appears,
    the earlier version is intact, and the next export succeeds."""
    base = tmp_path / "m"
    model = _tiny_recognizer(size=16)
    serving.export_model(base, kind="embed", recognizer=model, aligned_size=16, version=1)
    script = textwrap.dedent(f"""
        import os, signal, keras
        from occface.serving import export_model, layout
        def die_instead_of_rename(*args):  # the SavedModel is fully written to the temp dir now
            os.kill(os.getpid(), signal.SIGKILL)
        layout.os.rename = die_instead_of_rename
        inp = keras.Input((16, 16, 3))
        model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Flatten()(inp)))
        export_model({str(base)!r}, kind="embed", recognizer=model, aligned_size=16,
                     version=1, overwrite=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert serving.existing_versions(base) == [1]
    assert [p.name.split("-")[0] for p in base.iterdir() if p.name.startswith(".")] == [".tmp"]
    # version 1 is still the original model and loads fine
    outputs, _ = serving.run_signatures_in_fresh_process(
        base / "1", {"embed": {"images": np.zeros((1, 16, 16, 3), np.uint8)}})
    assert outputs["embed"]["embeddings"].shape == (1, 8)
    v2 = serving.export_model(base, kind="embed", recognizer=model, aligned_size=16)
    assert v2.name == "2"
    assert not [p for p in base.iterdir() if p.name.startswith(".")]  # the dead run's temp is gone


def test_relative_export_dir_checks_fine(tmp_path, monkeypatch, faces):
    """The self-check child runs in another directory: relative paths must still resolve."""
    monkeypatch.chdir(tmp_path)
    model = _tiny_recognizer(size=16)
    vdir = serving.export_model("rel/m", kind="embed", recognizer=model, aligned_size=16,
                                before_publish=lambda d: serving.check_export(d, faces=faces,
                                                                             recognizer=model))
    assert vdir == pathlib.Path("rel/m/1") and (tmp_path / "rel/m/1/saved_model.pb").is_file()


def test_recognizer_rebuilt_from_its_export(tmp_path, faces):
    """An embed export of an occface Recognizer gives the differentiable Keras model back."""
    from occface.inpainting.trainer import load_recognizer
    from occface.models import build_recognizer, recognizer_from_export
    model = build_recognizer(depth=18, variant="lcd", input_shape=(16, 16, 3), width=4,
                             embedding_size=8, seed=3)
    for var in model.trainable_variables:  # move off the initialiser so a re-init would show
        var.assign(var + 0.01 * np.random.default_rng(0).standard_normal(var.shape))
    vdir = serving.export_model(tmp_path / "m", kind="embed", recognizer=model, aligned_size=16)
    assert serving.read_metadata(vdir)["recognizer_config"]["width"] == 4
    # every weight is stored once (plus the threshold): tracking the model as well as the
    # endpoints' variables used to store each twice
    stored = tf.train.list_variables(str(vdir / "variables" / "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored
                 if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    weights = sum(int(np.prod(v.shape)) for v in model.variables if "seed_generator" not in v.path)
    assert values == weights + 1
    x = faces.astype(np.float32)
    from occface.models.io import load_keras_model  # tools/serving.py --model <export>
    for rebuilt in (recognizer_from_export(tmp_path / "m"), load_recognizer(tmp_path / "m"),
                    load_keras_model(tmp_path / "m"), load_keras_model(vdir)):
        assert isinstance(rebuilt, keras.Model)
        np.testing.assert_allclose(rebuilt(x, training=False).numpy(),
                                   model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    @tf.function  # as in the ID-GAN train step
    def input_gradient(xt):
        with tf.GradientTape() as tape:  # the point of rebuilding: gradients reach the faces
            tape.watch(xt)
            out = tf.reduce_sum(rebuilt(xt, training=False))
        return tape.gradient(out, xt)
    assert float(tf.reduce_max(tf.abs(input_gradient(tf.constant(x))))) > 0
    # a cascade export holds the generator's variables too: the recognizer is still found
    cdir = serving.export_model(tmp_path / "c", kind="cascade", recognizer=model,
                                generator=_tiny_generator(16), inpaint_policy=True,
                                aligned_size=16)
    np.testing.assert_allclose(recognizer_from_export(cdir)(x, training=False).numpy(),
                               model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    wrong = dict(serving.read_metadata(vdir)["recognizer_config"], width=8)
    with pytest.raises(ValueError, match="shape"):
        recognizer_from_export(vdir, wrong)
    plain = serving.export_model(tmp_path / "p", kind="embed", recognizer=_tiny_recognizer(16),
                                 aligned_size=16)
    with pytest.raises(ValueError, match="recognizer_config"):
        recognizer_from_export(plain)


def test_occlusion_region_from_mask_rows():
    """Split at row 0.55 * 20 = 11: rows 0-10 are the upper face."""
    masks = np.zeros((5, 20, 20, 1), np.float32)
    masks[0, 2:10, 3:15] = 1      # all above: upper (sunglasses)
    masks[1, 12:20, 3:15] = 1     # all below: lower (face mask)
    masks[2, 5:17, 3:15] = 1      # 6 of 12 rows above: other
    masks[3, 1:11, :] = 1         # 10 rows above + 1 row (4 of 20 px) below: 200/204 >= 0.8
    masks[3, 11, :4] = 1
    regions = serving.occlusion_region(tf.constant(masks)).numpy()  # masks[4] empty: other
    np.testing.assert_array_equal(regions, [0, 1, 2, 0, 2])


def test_cascade_inpaints_only_the_regions_the_policy_names(tmp_path):
    recognizer, gen = _tiny_recognizer(size=32), _tiny_generator(16)
    faces = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((2, 32, 32, 1), np.float32)
    masks[0, 4:14, 6:26] = 1   # upper face
    masks[1, 20:30, 6:26] = 1  # lower face
    policy = {"upper": False, "lower": True, "other": False}
    prepare = serving.make_masked_faces_fn(serving.make_inpaint_fn(gen, 32), policy)
    out = prepare(tf.constant(faces), tf.constant(masks)).numpy()
    np.testing.assert_array_equal(out[0], faces[0])  # upper: embedded as given
    assert np.any(out[1] != faces[1])                 # lower: inpainted
    np.testing.assert_array_equal(out[1][masks[1, ..., 0] == 0], faces[1][masks[1, ..., 0] == 0])
    with pytest.raises(serving.ExportError, match="missing"):
        serving.make_masked_faces_fn(serving.make_inpaint_fn(gen, 32), {"upper": True})


def test_published_version_is_readable_by_other_users(tmp_path):
    """TF Serving often runs as another user: every directory of a version is 0755 and every
    file 0644, whatever the exporting process's umask (mkdtemp alone would leave 0700)."""
    old_umask = os.umask(0o077)
    try:
        vdir = serving.export_model(tmp_path / "m", kind="embed",
                                    recognizer=_tiny_recognizer(size=16), aligned_size=16)
    finally:
        os.umask(old_umask)
    modes = {}
    for parent, dirs, files in os.walk(vdir):
        for name in [""] + dirs + files:
            path = pathlib.Path(parent) / name
            modes[str(path.relative_to(vdir))] = path.stat().st_mode & 0o777
    assert {"saved_model.pb", "variables", serving.METADATA_FILE} <= set(modes)
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (0o755 if (vdir / p).is_dir() else 0o644)}
    assert wrong == {}


def test_export_dir_that_is_a_file_is_refused_by_name(tmp_path):
    not_a_dir = tmp_path / "exports"
    not_a_dir.write_text("a file")
    model = _tiny_recognizer(size=16)
    for bad in (not_a_dir, not_a_dir / "sub"):
        want = (f"export directory {bad} exists and is not a directory" if bad == not_a_dir else
                f"export directory {bad} cannot be created: {not_a_dir} is not a directory")
        with pytest.raises(serving.ExportError) as err:
            serving.resolve_version(bad, 1)
        assert str(err.value) == want
        with pytest.raises(serving.ExportError, match="is not a directory"):
            serving.export_model(bad, kind="embed", recognizer=model, aligned_size=16)
    assert not_a_dir.read_text() == "a file"


def test_occface_export_is_a_shim_of_serving():
    """``occface.export`` / ``occface.export_tool`` keep their names, as the serving objects."""
    from occface import export, export_tool
    from occface.models import io
    from occface.serving import cascade, publish
    for name in export.__all__:
        assert getattr(export, name) is getattr(serving, name), name
    assert export_tool.run_export is publish.run_export
    assert export_tool.region_policy is cascade.region_policy
    assert export_tool.load_keras_model is io.load_keras_model
