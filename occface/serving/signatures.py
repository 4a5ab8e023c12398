"""The SavedModel's named signatures, and :func:`export_model`, which writes them.

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
    pixels are always copied through exactly (:func:`make_inpaint_fn`).
``cascade``
    Everything above plus ``verify_masked(faces_a, faces_b, masks_a, masks_b)``, which inpaints a
    face before embedding it when its mask is non-empty and the stored policy says inpainting helps
    for that occlusion region (:mod:`occface.serving.cascade`).

The version folder and its metadata are written by :mod:`occface.serving.layout`.
"""

import pathlib

from occface.inpainting.generator import generator_input_size, make_inpaint_fn
from occface.models.recognizer import Recognizer, recognizer_config
from occface.serving.cascade import (make_masked_faces_fn, normalize_inpaint_policy,
                                     region_descriptions)
from occface.serving.layout import METADATA_FILE, ExportError, publish_version, resolve_version
from occface.utils import run_metadata, write_json

__all__ = ["ALIGNED_SIZE", "KINDS", "model_input_size", "make_embed_fn", "make_inpaint_fn",
           "export_model"]

#: Side of the aligned faces the signatures take (ArcFace template).
ALIGNED_SIZE = 112
KINDS = ("embed", "inpaint", "cascade")


def model_input_size(model):
    """``(H, W)`` of a recognizer with input ``(N, H, W, 3)``; :class:`ExportError` otherwise."""
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[3] != 3:
        raise ExportError(f"expected an image model with input (N, H, W, 3), got {shape}")
    return int(shape[1]), int(shape[2])


def make_embed_fn(model, flip_test=True, aligned_size=ALIGNED_SIZE):
    """Graph function: uint8 aligned faces ``(N, s, s, 3)``, ``s = aligned_size`` →
    L2-normalised float32 embeddings ``(N, D)``.

    The face is resized (bilinear, antialiased) to the model's input size when that differs from
    ``aligned_size``; with ``flip_test`` the embeddings of the face and of its mirror image are
    summed before normalisation.
    """
    import tensorflow as tf

    height, width = model_input_size(model)

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
        See :func:`~occface.serving.layout.resolve_version`.
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
        raises, nothing is published (use it for the self-check,
        :func:`occface.serving.check.check_export`).

    Returns
    -------
    pathlib.Path
        The written version directory (world-readable, see
        :func:`~occface.serving.layout.publish_version`).

    Raises
    ------
    ExportError
        Missing models or policy for ``kind``, an existing version without ``overwrite``, an
        ``export_dir`` that is not a directory.
    ValueError
        A generator whose first input is not an RGB batch.
    """
    import keras
    import tensorflow as tf

    if kind not in KINDS:
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

    # No archive.track(model): the endpoints' variables are saved anyway (as the tf.Variables
    # under the Keras paths, e.g. "stem_conv/kernel"), and tracking the model as well stored
    # every weight a second time (its KerasVariables are separate checkpoint objects).
    if recognizer is not None and kind != "inpaint":
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
                    model_input_size=list(model_input_size(recognizer)))
        if isinstance(recognizer, Recognizer):  # lets occface.models.recognizer_from_export
            info["recognizer_config"] = recognizer_config(recognizer)  # rebuild it

    if generator is not None and kind != "embed":
        gen_h, gen_w = generator_input_size(generator)
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
        info["occlusion_regions"] = region_descriptions()

    if metadata and "calibration" in metadata:
        info["calibration"] = metadata["calibration"]
    if metadata and "licence" in metadata:  # the weights' terms, where a server operator looks
        info["licence"] = metadata["licence"]
    info["occface"] = run_metadata(metadata or {})

    def write(tmp_dir):
        archive.write_out(str(tmp_dir), verbose=False)
        meta_path = pathlib.Path(tmp_dir) / METADATA_FILE
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(meta_path, info)
        if before_publish is not None:
            before_publish(pathlib.Path(tmp_dir))

    return publish_version(export_dir, version, write, overwrite)
