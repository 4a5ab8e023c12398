"""One callable for every saved form of a recognizer: images ``(N, H, W, 3)`` → ``(N, D)``.

:class:`EmbeddingModel` hides whether the embeddings come from a Keras model
(:meth:`EmbeddingModel.from_keras`) or from a SavedModel signature
(:meth:`EmbeddingModel.from_saved_model`); :func:`occface.models.io.load_embedding_model` picks
the right one for a path.
"""

import numpy as np

__all__ = ["EmbeddingModel", "keras_input_size"]

#: Signatures a SavedModel recognizer is called through, in order of preference.
EMBEDDING_SIGNATURES = ("embed", "serving_default")


class EmbeddingModel:
    """A callable mapping face images to embeddings, whatever the saved format.

    Parameters
    ----------
    fn : callable
        Maps a float32 or uint8 array ``(n, H, W, 3)`` (per ``input_dtype``) to ``(n, D)``.
    input_size : tuple of int
        ``(H, W)`` the model expects. Images of another size are resized (``cv2.INTER_AREA`` when
        shrinking, bilinear when enlarging) before ``fn`` is called.
    input_dtype : str
        ``"float32"`` (values in [0, 255]) or ``"uint8"`` (rounded and clipped).
    source, kind : str
        Where the model came from and its format (``"keras"``, ``"savedmodel"``, ``"object"``).
    info : dict
        Extra metadata (for a training ``model_dir``: its ``config.json``).
    embedding_size : int, optional
        ``D`` when known (else probed or recorded on the first call).
    saved_model : object, optional
        The loaded SavedModel (``tf.saved_model.load``) behind ``fn``, kept alive with its
        variables; its other signatures (``verify_masked``, ``inpaint`` …) are
        ``saved_model.signatures``. ``None`` for a Keras model.

    Calling it with images ``(N, H, W, 3)`` in [0, 255] returns ``np.ndarray (N, D)`` float32
    (un-normalised embeddings; :func:`occface.evaluation.embed_images` adds batching and
    flip-test).
    """

    def __init__(self, fn, input_size, input_dtype="float32", source=None, kind="object",
                 info=None, embedding_size=None, saved_model=None):
        self._fn = fn
        self.input_size = tuple(int(s) for s in input_size)
        self.input_dtype = input_dtype
        self.source = None if source is None else str(source)
        self.kind = kind
        self.info = dict(info or {})
        self.saved_model = saved_model
        self._embedding_size = embedding_size

    @classmethod
    def from_keras(cls, model, source=None, kind="keras", info=None):
        """Wrap a ``keras.Model`` mapping ``(N, H, W, 3)`` float in [0, 255] to ``(N, D)``.

        The model is called in inference mode through one ``tf.function`` (no retracing per
        batch size).
        """
        import tensorflow as tf
        size = keras_input_size(model)

        @tf.function(input_signature=[tf.TensorSpec([None, size[0], size[1], 3], tf.float32)],
                     reduce_retracing=True)
        def fn(x):
            return model(x, training=False)

        return cls(fn, size, "float32", source=source, kind=kind, info=info)

    @classmethod
    def from_saved_model(cls, loaded, source=None):
        """Wrap a loaded SavedModel through its ``embed`` (else ``serving_default``) signature.

        Parameters
        ----------
        loaded : object
            ``tf.saved_model.load(...)``; the signature must take one image batch
            ``[N, H, W, 3]`` of a fixed size (uint8 or float).

        Raises
        ------
        ValueError
            No usable signature, or it takes several inputs or images of no fixed size.
        """
        import tensorflow as tf
        sigs = loaded.signatures
        name = next((n for n in EMBEDDING_SIGNATURES if n in sigs), None)
        if name is None:
            raise ValueError(f"SavedModel {source} has neither an 'embed' nor a "
                             f"'serving_default' signature (has: {sorted(sigs) or 'none'})")
        sig = sigs[name]
        _, kwargs = sig.structured_input_signature
        if len(kwargs) != 1:
            raise ValueError(f"SavedModel signature {name!r} takes {len(kwargs)} inputs; expected "
                             "one image batch")
        arg, spec = next(iter(kwargs.items()))
        shape = spec.shape.as_list()
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise ValueError(f"SavedModel signature {name!r} input shape {shape} is not "
                             "[N, H, W, 3] with a fixed size")
        dtype = "uint8" if spec.dtype == tf.uint8 else "float32"

        def fn(x):
            return sig(**{arg: tf.constant(x, dtype=spec.dtype)})

        return cls(fn, (shape[1], shape[2]), dtype, source=source, kind="savedmodel",
                   info={"signature": name}, saved_model=loaded)

    @property
    def embedding_size(self):
        """Embedding dimension ``D`` (probed with one blank image when not known)."""
        if self._embedding_size is None:
            probe = np.zeros((1,) + self.input_size + (3,), dtype=np.float32)
            self(probe)
        return self._embedding_size

    def prepare(self, images):
        """Check, resize and cast ``images (N, H, W, 3)`` to what the model takes."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) RGB; got shape {images.shape}")
        if tuple(images.shape[1:3]) != self.input_size:
            images = _resize_batch(images, self.input_size)
        if self.input_dtype == "uint8":
            if images.dtype != np.uint8:
                images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        else:
            images = images.astype(np.float32, copy=False)
        return images

    def __call__(self, images):
        x = self.prepare(images)
        out = _to_numpy(self._fn(x))
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(f"model returned shape {out.shape} for {x.shape[0]} images; expected "
                             "(N, D) embeddings")
        if self._embedding_size is None:
            self._embedding_size = int(out.shape[1])
        return out.astype(np.float32, copy=False)

    def describe(self):
        """Small JSON-able description for result files."""
        return {"source": self.source, "kind": self.kind, "input_size": list(self.input_size),
                "input_dtype": self.input_dtype, "embedding_size": self._embedding_size}

    def __repr__(self):
        return (f"EmbeddingModel(kind={self.kind!r}, source={self.source!r}, "
                f"input_size={self.input_size})")


def keras_input_size(model):
    """``(H, W)`` of a Keras image model with input ``(None, H, W, 3)``.

    Raises
    ------
    ValueError
        When the input has no fixed spatial size.
    """
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(f"Keras model input shape {shape} is not (None, H, W, 3) with a fixed "
                         "size")
    return int(shape[1]), int(shape[2])


def _resize_batch(images, size):
    import cv2
    h, w = size
    out = np.empty((images.shape[0], h, w, 3), dtype=np.float32)
    for i, img in enumerate(images):
        img = np.asarray(img, dtype=np.float32)
        interp = cv2.INTER_AREA if img.shape[0] >= h and img.shape[1] >= w else cv2.INTER_LINEAR
        out[i] = cv2.resize(img, (w, h), interpolation=interp)
    return out


def _to_numpy(out):
    if isinstance(out, dict):
        for key in ("embedding", "embeddings", "output_0"):
            if key in out:
                out = out[key]
                break
        else:
            if len(out) != 1:
                raise ValueError(f"model returned several outputs {sorted(out)}; cannot tell which "
                                 "is the embedding")
            out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)
