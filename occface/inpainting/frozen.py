"""The frozen networks of the ID-GAN losses: the recognizer R (identity) and the face parser S.

:func:`load_recognizer` reads R from a ``.keras`` file, a training ``model_dir`` or a SavedModel;
:func:`prepare_parser` loads S, or trains the default landmark parser on the training faces;
:func:`frozen_call` calls either in inference mode inside the training step.
"""

import logging
import pathlib

import keras
import tensorflow as tf

from occface.inpainting.data import load_faces_with_landmarks
from occface.models.io import existing_versions, recognizer_from_export, register_custom_objects
from occface.inpainting.parsing import build_face_parser, train_face_parser
from occface.train.checkpoint import save_keras_atomic

log = logging.getLogger(__name__)


def load_recognizer(path):
    """Load a frozen recognizer for the identity terms.

    Parameters
    ----------
    path : str or path
        A ``.keras`` file, a training ``model_dir`` holding ``model.keras``, or a SavedModel
        directory or versioned export base (latest version). An occface export with a uint8
        ``embed`` signature is rebuilt as its Keras recognizer
        (:func:`occface.models.recognizer_from_export`: low and high features, differentiable);
        any other SavedModel's float ``embed`` / ``serving_default`` signature gives high-level
        features only.

    Returns
    -------
    keras.Model or callable
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recognizer not found: {path}")
    register_custom_objects()
    if path.is_dir() and (path / "model.keras").is_file():
        path = path / "model.keras"
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"recognizer file must be a .keras model, got {path}")
        return keras.saving.load_model(path, compile=False)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        versions = existing_versions(path)
        if versions:  # a TF Serving base directory: the newest version
            path = path / str(versions[-1])
    if (path / "saved_model.pb").is_file():
        loaded = tf.saved_model.load(str(path))
        for name in ("embed", "serving_default"):
            if name not in loaded.signatures:
                continue
            signature = loaded.signatures[name]
            specs = signature.structured_input_signature[1]
            key = sorted(specs)[0]
            if not specs[key].dtype.is_floating:
                # occface exports serve uint8 faces (no gradient): rebuild the Keras recognizer
                # from the variables they track (needs 'recognizer_config' in the metadata)
                try:
                    return recognizer_from_export(path)
                except ValueError as err:
                    raise ValueError(
                        f"SavedModel {path} signature {name!r} takes {specs[key].dtype.name} "
                        "images: the identity losses need gradients through the recognizer, "
                        f"and rebuilding the Keras model failed ({err}); give a float-input "
                        "signature or the .keras recognizer") from err

            def call(images, _sig=signature, _key=key, _dtype=specs[key].dtype):
                return _sig(**{_key: tf.cast(images, _dtype)})
            call.saved_model = loaded  # keep the trackables alive
            return call
        raise ValueError(f"SavedModel {path} has no 'embed' or 'serving_default' signature")
    raise ValueError(f"{path} is neither a .keras file, a model_dir with model.keras, nor a "
                     "SavedModel directory")


def prepare_parser(config, model_dir, identities=None, is_chief=True):
    """The face parser of the structure loss: loaded, or trained on landmark labels and saved.

    ``config.parser_path`` if set; else ``model_dir/parser.keras`` if an earlier run of this
    ``model_dir`` made one; else a :func:`~occface.inpainting.build_face_parser` trained with
    :func:`~occface.inpainting.train_face_parser` on up to ``parser_max_images`` training faces
    (landmarks from ``records.csv``), saved to ``model_dir/parser.keras`` by the chief.

    Parameters
    ----------
    config : IDGANConfig
        Uses ``parser_path``, ``data_dir``, ``image_size``, ``seed`` and the ``parser_*``
        training settings.
    model_dir : path
        The run's directory (``parser.keras`` is read from / written to it).
    identities : collection of str, optional
        The training identities the default parser is trained on (None: all).
    is_chief : bool
        Whether this worker saves a parser it trained.

    Returns
    -------
    keras.Model
        Frozen (``trainable = False``): ``(N, S, S, 3)`` images in [0, 255] -> ``(N, S, S, K)``
        parsing logits.

    Raises
    ------
    FileNotFoundError
        ``parser_path`` is set but missing.
    ValueError
        Nothing to train the default parser on, or a parser of another image size.
    """
    register_custom_objects()
    own = pathlib.Path(model_dir) / "parser.keras"
    path = pathlib.Path(config.parser_path) if config.parser_path else own
    if path.is_file():
        parser = keras.saving.load_model(path, compile=False)
        log.info("face parser loaded from %s", path)
    elif config.parser_path:
        raise FileNotFoundError(f"face parser not found: {config.parser_path}")
    else:
        if not config.data_dir:
            raise ValueError("no parser_path and no data_dir to train the default parser on")
        images, landmarks = load_faces_with_landmarks(
            config.data_dir, config.image_size, identities=identities,
            max_images=config.parser_max_images, seed=config.seed)
        keras.utils.set_random_seed(config.seed + 17)
        parser = build_face_parser(config.image_size, width=config.parser_width)
        history = train_face_parser(parser, images, landmarks, epochs=config.parser_epochs,
                                    batch_size=config.parser_batch_size,
                                    learning_rate=config.parser_learning_rate,
                                    seed=config.seed)
        log.info("face parser trained on %d faces: %s", len(images), history)
        if is_chief:
            save_keras_atomic(parser, own)
    shape = parser.input_shape
    if tuple(shape[1:3]) != (config.image_size, config.image_size):
        raise ValueError(f"face parser takes {shape[1:3]} images, the run uses "
                         f"{config.image_size}x{config.image_size}")
    parser.trainable = False
    return parser


def frozen_call(model):
    """A frozen network as a plain function: a Keras model in inference mode, others as they are.

    Parameters
    ----------
    model : keras.Layer or callable
        E.g. the face parser, ``(N, S, S, 3) -> (N, S, S, K)``.

    Returns
    -------
    callable
        ``x -> model(x, training=False)`` for Keras layers and models, else ``model``.
    """
    if isinstance(model, keras.layers.Layer):
        return lambda x: model(x, training=False)
    return model
