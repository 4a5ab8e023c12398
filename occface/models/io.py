"""Model I/O: one path rule for every saved form of an occface model, and its loaders.

Saved forms (:func:`resolve_model_path`)
    * a Keras file (``.keras``, or legacy ``.h5``);
    * a training ``model_dir``: ``best/<name>`` (best validation checkpoint) is preferred to
      ``<name>`` (last weights), where ``<name>`` is ``model.keras`` for a recognizer and
      ``generator.keras`` for an ID-GAN run; ``checkpoint="best"`` / ``"last"`` asks for one;
    * a SavedModel directory (``saved_model.pb``), or a TF Serving base directory of numbered
      versions (``export_dir/<version>/``, the layout of :mod:`occface.serving.layout`): the
      highest version holding a ``saved_model.pb``;
    * legacy: a directory whose ``export/``, ``saved_model/`` or ``savedmodel/`` holds one;
    * not a path: ``"dlib"`` names dlib's ResNet, an independent peer recognizer
      (:mod:`occface.models.dlib_peer`; :func:`load_embedding_model` only).

Loaders
    :func:`load_keras_model` (a ``keras.Model``; an occface ``embed`` export is rebuilt with
    :func:`recognizer_from_export`), :func:`load_generator` (an inpainting generator),
    :func:`load_embedding_model` (an :class:`~occface.models.embedding_model.EmbeddingModel`
    from any form). :func:`register_custom_objects` makes occface's Keras objects deserialisable.

Export metadata (read side)
    :data:`METADATA_FILE`, :func:`existing_versions`, :func:`latest_version_dir`,
    :func:`read_metadata`; the write side (publishing versions) is :mod:`occface.serving.layout`.
"""

import dataclasses
import json
import logging
import os
import pathlib

from occface.models.embedding_model import EmbeddingModel

__all__ = ["METADATA_FILE", "ModelPath", "existing_versions", "latest_version_dir",
           "read_metadata", "resolve_model_path", "register_custom_objects", "load_keras_model",
           "load_generator", "load_embedding_model", "recognizer_from_export"]

log = logging.getLogger(__name__)

#: Where an occface export stores its metadata, relative to the version directory.
METADATA_FILE = os.path.join("assets.extra", "occface.json")
KERAS_SUFFIXES = (".keras", ".h5")
LEGACY_SAVEDMODEL_DIRS = ("export", "saved_model", "savedmodel")


# --------------------------------------------------------------------------------------------
# Export layout, read side
# --------------------------------------------------------------------------------------------

def existing_versions(export_dir):
    """Sorted integer version sub-directories of ``export_dir`` (TF Serving layout; ``[]`` if it
    is not a directory)."""
    export_dir = pathlib.Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version_dir(path):
    """The directory holding ``saved_model.pb``: ``path`` itself, or its highest numbered version
    that holds one.

    Raises
    ------
    FileNotFoundError
        Neither ``path`` nor any numbered sub-directory holds a ``saved_model.pb``.
    """
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = [v for v in existing_versions(path) if (path / str(v) / "saved_model.pb").is_file()]
    if not versions:
        raise FileNotFoundError(f"no SavedModel found at {path} (no saved_model.pb and no numbered "
                                "version sub-directories)")
    return path / str(versions[-1])


def read_metadata(version_dir):
    """The ``occface.json`` metadata dict stored with an export (``{}`` if absent)."""
    path = pathlib.Path(version_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# The path rule
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelPath:
    """Where a model's weights are, as :func:`resolve_model_path` found them.

    Attributes
    ----------
    path : pathlib.Path
        The Keras file, or the SavedModel (version) directory holding ``saved_model.pb``.
    format : str
        ``"keras"`` or ``"savedmodel"``.
    model_dir : pathlib.Path or None
        The training ``model_dir`` the Keras file was chosen from.
    """
    path: pathlib.Path
    format: str
    model_dir: pathlib.Path = None

    @property
    def metadata(self):
        """The export metadata of a SavedModel (``{}`` for Keras files and foreign exports)."""
        return read_metadata(self.path) if self.format == "savedmodel" else {}


def resolve_model_path(path, checkpoint="auto", filename="model.keras"):
    """Apply the path rule of the module docstring.

    Parameters
    ----------
    path : str or path-like
    checkpoint : {"auto", "best", "last"}
        For a ``model_dir``: ``"auto"`` takes ``best/<filename>`` when present, else
        ``<filename>``.
    filename : str
        The Keras file a ``model_dir`` holds (``"model.keras"``, ``"generator.keras"``).

    Returns
    -------
    ModelPath

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist, or the requested checkpoint is missing.
    ValueError
        ``path`` exists but is no saved model in a known form.
    """
    if checkpoint not in ("auto", "best", "last"):
        raise ValueError(f"checkpoint must be 'auto', 'best' or 'last', got {checkpoint!r}")
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_file():
        if path.suffix in KERAS_SUFFIXES:
            return ModelPath(path, "keras")
        raise ValueError(f"unknown model format: {path} (expected a .keras file, a training "
                         "model_dir or a SavedModel directory)")
    if (path / "saved_model.pb").is_file():
        return ModelPath(path, "savedmodel")
    last, best = path / filename, path / "best" / filename
    if last.is_file() or best.is_file():
        if checkpoint == "best" and not best.is_file():
            raise FileNotFoundError(f"no best checkpoint in {path} (expected {best})")
        if checkpoint == "last" and not last.is_file():
            raise FileNotFoundError(f"no last checkpoint in {path} (expected {last})")
        chosen = best if (checkpoint in ("auto", "best") and best.is_file()) else last
        return ModelPath(chosen, "keras", model_dir=path)
    try:
        return ModelPath(latest_version_dir(path), "savedmodel")
    except FileNotFoundError:
        pass
    for sub in LEGACY_SAVEDMODEL_DIRS:
        if (path / sub / "saved_model.pb").is_file():
            return ModelPath(path / sub, "savedmodel")
    raise ValueError(f"unknown model format: directory {path} has no {filename}, "
                     f"best/{filename} or saved_model.pb")


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------

def register_custom_objects():
    """Register every occface Keras object (layers, losses, models) for deserialisation.

    Importing :mod:`occface.layers`, :mod:`occface.losses` and :mod:`occface.models` registers
    them under the ``"occface"`` package; this makes the dependency explicit where a model is
    loaded.

    Returns
    -------
    list of str
        The registered names (``"occface>LCD"`` …), sorted.
    """
    import keras

    import occface.layers  # noqa: F401
    import occface.losses  # noqa: F401
    import occface.models.mobilefacenet  # noqa: F401
    import occface.models.recognizer  # noqa: F401
    return sorted(k for k in keras.saving.get_custom_objects() if k.startswith("occface>"))


def _load_keras_file(path, what="Keras model"):
    import keras
    register_custom_objects()
    try:
        return keras.saving.load_model(str(path), compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"cannot load {what} {path}: {err}") from err


def load_keras_model(path, checkpoint="auto"):
    """A ``keras.Model`` from a ``.keras`` file, a training ``model_dir`` or an occface export.

    An export (``embed`` or ``cascade``) is rebuilt as its Keras recognizer with
    :func:`recognizer_from_export` (needs ``recognizer_config`` in its metadata).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`resolve_model_path`; ``ValueError`` also when the file does not load.
    """
    where = resolve_model_path(path, checkpoint)
    if where.format == "savedmodel":
        return recognizer_from_export(where.path)
    return _load_keras_file(where.path)


def load_generator(path, checkpoint="auto"):
    """An inpainting generator from a ``.keras`` file or an ID-GAN ``model_dir``.

    Returns
    -------
    keras.Model
        ``[images (N, S, S, 3) in [0, 255], masks (N, S, S, 1)] -> images (N, S, S, 3)``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` holds no generator (a directory without ``generator.keras``, a SavedModel), the
        file does not load or is no ``[image, mask]`` model.
    """
    where = resolve_model_path(path, checkpoint, filename="generator.keras")
    if where.format != "keras":
        raise ValueError(f"{where.path} is a SavedModel; a generator loads from its .keras file "
                         "(or the ID-GAN model_dir holding generator.keras)")
    model = _load_keras_file(where.path, "generator")
    if len(model.inputs) != 2:
        raise ValueError(f"{where.path} is not an inpainting generator (expects [image, mask] "
                         "inputs)")
    return model


def load_embedding_model(path, checkpoint="auto"):
    """Load a recognizer from any saved form (module docstring) as an :class:`EmbeddingModel`.

    A Keras model is called as is; a SavedModel through its ``embed`` signature (uint8
    ``[N, 112, 112, 3]`` for an occface export), else ``serving_default``.

    Parameters
    ----------
    path : str or path-like
        Also ``"dlib"`` (``"dlib:<file.dat>"``): dlib's ResNet, an independent peer
        (:func:`occface.models.dlib_peer.dlib_embedding_model`, optional dependency).
    checkpoint : {"auto", "best", "last"}
        See :func:`resolve_model_path`.

    Returns
    -------
    EmbeddingModel
        ``model(images)`` maps ``(N, H, W, 3)`` images in [0, 255] to ``np.ndarray (N, D)``;
        ``model.input_size`` is ``(H, W)``; for a ``model_dir`` ``model.info`` holds
        ``model_dir``, ``checkpoint`` and its ``config.json`` as ``config``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (or a requested checkpoint is missing).
    ValueError
        ``path`` exists but is not a model in a known format.
    """
    from occface.models.dlib_peer import dlib_embedding_model, is_dlib_spec
    if is_dlib_spec(path):
        return dlib_embedding_model(path.partition(":")[2] or None)
    where = resolve_model_path(path, checkpoint)
    if where.format == "savedmodel":
        import tensorflow as tf
        try:
            loaded = tf.saved_model.load(str(where.path))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot load SavedModel {where.path}: {err}") from err
        return EmbeddingModel.from_saved_model(loaded, source=where.path)
    info = None
    if where.model_dir is not None:
        info = {"model_dir": str(where.model_dir),
                "checkpoint": where.path.relative_to(where.model_dir).as_posix()}
        cfg = where.model_dir / "config.json"
        if cfg.is_file():
            try:
                info["config"] = json.loads(cfg.read_text())
            except ValueError:
                log.warning("ignoring unreadable %s", cfg)
        log.info("loading %s", where.path)
    return EmbeddingModel.from_keras(_load_keras_file(where.path), source=where.path,
                                     info=info)


def recognizer_from_export(path, config=None):
    """Rebuild the Keras :class:`~occface.models.Recognizer` stored in an occface export.

    An export serves uint8 faces, so gradients cannot flow through its signatures; ID-GAN's
    identity terms need a differentiable recognizer with its intermediate layers. The export
    stores every variable its signatures use under its Keras path (``stem_conv/kernel`` …), so
    the same architecture built with :func:`~occface.models.build_recognizer` takes them back
    exactly.

    Parameters
    ----------
    path : str or path
        Export base directory (latest version used) or a version directory.
    config : dict or None
        :func:`~occface.models.recognizer_config`-style build arguments; default: the export's
        ``recognizer_config`` metadata (written by :func:`occface.serving.export_model`).

    Returns
    -------
    Recognizer
        Images ``(N, H, W, 3)`` float in [0, 255] → embeddings ``(N, D)`` (un-normalised, no
        flip-test: the export's ``embed`` adds both around this model).

    Raises
    ------
    ValueError
        When the architecture is unknown, or its variables do not match the export's (names the
        missing / extra / mis-shaped variables).
    """
    import tensorflow as tf
    from occface.models.recognizer import build_recognizer, upgrade_config

    version_dir = latest_version_dir(path)
    metadata = read_metadata(version_dir)
    if config is None:
        config = metadata.get("recognizer_config")
        if config is None:
            raise ValueError(f"{version_dir} has no 'recognizer_config' in {METADATA_FILE}: pass "
                             "the build arguments (e.g. from the training flagfile) as config=")
    config = upgrade_config(config)  # exports written before lcd_position: "branch"
    config["input_shape"] = tuple(config["input_shape"])
    model = build_recognizer(**config)

    loaded = tf.saved_model.load(str(version_dir))

    def is_weight(name):  # RNG states of the dropout layers carry per-process counter names
        return "seed_generator" not in name and name != "verify_threshold"

    stored = {}
    # the variables the endpoints use, named by their Keras paths; exports written before
    # 2026-12-05 also tracked the model, whose copy is "variables"
    for var in getattr(loaded, "variables", None) or loaded._all_variables:
        name = var.name[:-2] if var.name.endswith(":0") else var.name
        if is_weight(name):
            stored[name] = var
    wanted = {v.path: v for v in model.variables if is_weight(v.path)}
    missing = sorted(set(wanted) - set(stored))
    # a cascade export also holds its generator's variables: not the recognizer's to match
    extra = [] if metadata.get("kind") == "cascade" else sorted(set(stored) - set(wanted))
    if missing or extra:
        raise ValueError(f"export {version_dir} does not hold this architecture: missing "
                         f"{missing[:5]}{'…' if len(missing) > 5 else ''} ({len(missing)}), "
                         f"unexpected {extra[:5]}{'…' if len(extra) > 5 else ''} ({len(extra)})")
    for name, var in wanted.items():
        value = stored[name].numpy()
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"variable {name}: export has shape {value.shape}, the architecture "
                             f"{tuple(var.shape)}")
        var.assign(value)
    return model
