"""Embedding face images with a recognizer in any of its saved forms (batching, flip-test).

Loading lives in :mod:`occface.models.io` (one path rule for ``.keras`` files, training
``model_dir``s and SavedModel exports); :class:`EmbeddingModel` and :func:`load_embedding_model`
are re-exported here for the evaluation code that names them.
"""

import os

import numpy as np

from occface.models.embedding_model import EmbeddingModel
from occface.models.io import load_embedding_model

__all__ = ["EmbeddingModel", "load_embedding_model", "embed_images", "as_embedding_model"]


def as_embedding_model(model):
    """Wrap a ``keras.Model``, an :class:`EmbeddingModel` or a path (:func:`load_embedding_model`)
    as an :class:`EmbeddingModel`."""
    if isinstance(model, EmbeddingModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_embedding_model(model)
    import keras
    if isinstance(model, keras.Model):
        return EmbeddingModel.from_keras(model, source=getattr(model, "name", None), kind="object")
    raise TypeError(f"cannot use a {type(model).__name__} as an embedding model")


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
    return np.concatenate(chunks, axis=0)
