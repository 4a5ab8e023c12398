"""Loading a trained recognizer in any of its saved forms and embedding face images with it."""

import importlib
import json
import logging
import os
import pathlib

import numpy as np

__all__ = ["EmbeddingModel", "load_embedding_model", "embed_images", "as_embedding_model"]

log = logging.getLogger(__name__)

# Modules whose import registers the package's custom Keras objects (layers, losses, models).
_REGISTERING_MODULES = ("occface.layers", "occface.losses", "occface.models", "occface.inpainting")


def _register_custom_objects():
    for name in _REGISTERING_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:  # module not written (yet): nothing to register
            if err.name is None or not name.startswith(err.name):
                raise


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

    Calling it with images ``(N, H, W, 3)`` in [0, 255] returns ``np.ndarray (N, D)`` float32
    (un-normalised embeddings; use :func:`embed_images` for batching and flip-test).
    """

    def __init__(self, fn, input_size, input_dtype="float32", source=None, kind="object",
                 info=None, embedding_size=None):
        self._fn = fn
        self.input_size = tuple(int(s) for s in input_size)
        self.input_dtype = input_dtype
        self.source = None if source is None else str(source)
        self.kind = kind
        self.info = dict(info or {})
        self._embedding_size = embedding_size

    @property
    def embedding_size(self):
        """Embedding dimension ``D`` (probed with one blank image when not known)."""
        if self._embedding_size is None:
            probe = np.zeros((1,) + self.input_size + (3,), dtype=np.float32)
            self._embedding_size = int(self(probe).shape[-1])
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
        return out.astype(np.float32, copy=False)

    def describe(self):
        """Small JSON-able description for result files."""
        return {"source": self.source, "kind": self.kind, "input_size": list(self.input_size),
                "input_dtype": self.input_dtype, "embedding_size": self._embedding_size}

    def __repr__(self):
        return (f"EmbeddingModel(kind={self.kind!r}, source={self.source!r}, "
                f"input_size={self.input_size})")


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


def _keras_input_size(model):
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(f"Keras model input shape {shape} is not (None, H, W, 3) with a fixed "
                         "size")
    return int(shape[1]), int(shape[2])


def _from_keras_model(model, source=None, kind="keras", info=None):
    import tensorflow as tf
    size = _keras_input_size(model)

    @tf.function(input_signature=[tf.TensorSpec([None, size[0], size[1], 3], tf.float32)],
                 reduce_retracing=True)
    def fn(x):
        return model(x, training=False)

    return EmbeddingModel(fn, size, "float32", source=source, kind=kind, info=info)


def as_embedding_model(model):
    """Wrap a ``keras.Model``, an :class:`EmbeddingModel` or a path as an :class:`EmbeddingModel`."""
    if isinstance(model, EmbeddingModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_embedding_model(model)
    import keras
    if isinstance(model, keras.Model):
        return _from_keras_model(model, source=getattr(model, "name", None), kind="object")
    raise TypeError(f"cannot use a {type(model).__name__} as an embedding model")


def _load_keras_file(path, info=None):
    import keras
    _register_custom_objects()
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"cannot load Keras model {path}: {err}") from err
    return _from_keras_model(model, source=path, kind="keras", info=info)


def _load_savedmodel(path):
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load SavedModel {path}: {err}") from err
    sigs = loaded.signatures
    name = "embed" if "embed" in sigs else "serving_default" if "serving_default" in sigs else None
    if name is None:
        raise ValueError(f"SavedModel {path} has neither an 'embed' nor a 'serving_default' "
                         f"signature (has: {sorted(sigs) or 'none'})")
    sig = sigs[name]
    _, kwargs = sig.structured_input_signature
    if len(kwargs) != 1:
        raise ValueError(f"SavedModel signature {name!r} takes {len(kwargs)} inputs; expected one "
                         "image batch")
    arg, spec = next(iter(kwargs.items()))
    shape = spec.shape.as_list()
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(f"SavedModel signature {name!r} input shape {shape} is not "
                         "[N, H, W, 3] with a fixed size")
    dtype = "uint8" if spec.dtype == tf.uint8 else "float32"

    def fn(x):
        return sig(**{arg: tf.constant(x, dtype=spec.dtype)})

    model = EmbeddingModel(fn, (shape[1], shape[2]), dtype, source=path, kind="savedmodel",
                           info={"signature": name})
    model._loaded = loaded  # keep the trackable object (and its variables) alive
    return model


def load_embedding_model(path, checkpoint="auto"):
    """Load a recognizer from any saved form as an :class:`EmbeddingModel`.

    Parameters
    ----------
    path : str or path-like
        One of

        * a Keras file (``.keras``, or legacy ``.h5``); the package's custom layers are registered
          first so they deserialise;
        * a training ``model_dir`` holding ``model.keras`` (last weights), optionally
          ``best/model.keras`` (best validation checkpoint) and ``config.json``;
        * an exported SavedModel directory (``saved_model.pb``), or a TF Serving base directory
          of numbered versions (``occface.export`` layout; the highest version is used), called
          through its ``embed`` signature (uint8 ``[N, 112, 112, 3]``), else
          ``serving_default``.
    checkpoint : {"auto", "best", "last"}
        For a ``model_dir``: ``"auto"`` takes ``best/`` when present, else ``model.keras``.

    Returns
    -------
    EmbeddingModel
        ``model(images)`` maps ``(N, H, W, 3)`` images in [0, 255] to ``np.ndarray (N, D)``;
        ``model.input_size`` is ``(H, W)``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (or a requested checkpoint is missing).
    ValueError
        ``path`` exists but is not a model in a known format.
    """
    if checkpoint not in ("auto", "best", "last"):
        raise ValueError(f"checkpoint must be 'auto', 'best' or 'last', got {checkpoint!r}")
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_file():
        if path.suffix in (".keras", ".h5"):
            return _load_keras_file(path)
        raise ValueError(f"unknown model format: {path} (expected a .keras file, a training "
                         "model_dir or a SavedModel directory)")
    if (path / "saved_model.pb").is_file():
        return _load_savedmodel(path)
    last, best = path / "model.keras", path / "best" / "model.keras"
    if last.is_file() or best.is_file():
        if checkpoint == "best" and not best.is_file():
            raise FileNotFoundError(f"no best checkpoint in {path} (expected {best})")
        if checkpoint == "last" and not last.is_file():
            raise FileNotFoundError(f"no last checkpoint in {path} (expected {last})")
        chosen = best if (checkpoint in ("auto", "best") and best.is_file()) else last
        info = {"model_dir": str(path), "checkpoint": str(chosen.relative_to(path))}
        cfg = path / "config.json"
        if cfg.is_file():
            try:
                info["config"] = json.loads(cfg.read_text())
            except ValueError:
                log.warning("ignoring unreadable %s", cfg)
        log.info("loading %s", chosen)
        return _load_keras_file(chosen, info=info)
    # TF Serving layout (``occface.export``): numbered version directories; take the newest.
    versions = sorted((int(p.name), p) for p in path.iterdir()
                      if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file())
    if versions:
        return _load_savedmodel(versions[-1][1])
    for sub in ("export", "saved_model", "savedmodel"):
        if (path / sub / "saved_model.pb").is_file():
            return _load_savedmodel(path / sub)
    raise ValueError(f"unknown model format: directory {path} has no model.keras, "
                     "best/model.keras or saved_model.pb")


def embed_images(model, images, batch_size=64, flip=False, progress=None):
    """Embed face images in batches, optionally with flip-test.

    Parameters
    ----------
    model : EmbeddingModel, keras.Model or path
    images : array_like, shape (N, H, W, 3), or a sequence of (H, W, 3) arrays
        RGB in [0, 255] (uint8 or float).
    batch_size : int
    flip : bool
        Flip-test: the embedding is ``f(x) + f(mirror(x))`` (horizontal mirror).
    progress : callable, optional
        Called with the number of images finished after each batch (e.g. ``ProgressBar.update``).

    Returns
    -------
    np.ndarray, shape (N, D), float32
        Un-normalised embeddings.
    """
    model = as_embedding_model(model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(images)
    chunks = []
    for s in range(0, n, batch_size):
        batch = np.asarray(images[s:s + batch_size])
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) RGB; got a batch of shape {batch.shape}")
        if flip:
            both = model(np.concatenate([batch, batch[:, :, ::-1]], axis=0))
            emb = both[: len(batch)] + both[len(batch):]
        else:
            emb = model(batch)
        chunks.append(emb)
        if progress is not None:
            progress(len(batch))
    if not chunks:
        return np.zeros((0, model.embedding_size), dtype=np.float32)
    out = np.concatenate(chunks, axis=0)
    if model._embedding_size is None:
        model._embedding_size = int(out.shape[1])
    return out
