"""Rebuild a Keras :class:`~occface.models.Recognizer` from an occface ``embed`` SavedModel.

An export serves uint8 faces, so gradients cannot flow through its signatures; ID-GAN's identity
terms need a differentiable recognizer with its intermediate layers. The export tracks every
variable of the recognizer under its Keras path (``stem_conv/kernel`` …), so the same
architecture built with :func:`~occface.models.build_recognizer` can take them back exactly.
The architecture comes from the export metadata (``recognizer_config``, written by
:func:`occface.export.export_model`) or is given by the caller.
"""
import json
import pathlib

METADATA_FILE = pathlib.Path("assets.extra") / "occface.json"


def _version_dir(path):
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()) \
        if path.is_dir() else []
    if not versions:
        raise FileNotFoundError(f"no SavedModel at {path} (no saved_model.pb and no numbered "
                                "version sub-directories)")
    return path / str(versions[-1])


def recognizer_from_export(path, config=None):
    """Rebuild the Keras recognizer stored in an occface export.

    Parameters
    ----------
    path : str or path
        Export base directory (latest version used) or a version directory.
    config : dict or None
        :func:`~occface.models.recognizer_config`-style build arguments; default: the export's
        ``recognizer_config`` metadata.

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
    from occface.models.recognizer import build_recognizer

    version_dir = _version_dir(path)
    if config is None:
        meta_path = version_dir / METADATA_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        config = meta.get("recognizer_config")
        if config is None:
            raise ValueError(f"{version_dir} has no 'recognizer_config' in {METADATA_FILE}: pass "
                             "the build arguments (e.g. from the training flagfile) as config=")
    config = dict(config)
    config["input_shape"] = tuple(config["input_shape"])
    model = build_recognizer(**config)

    loaded = tf.saved_model.load(str(version_dir))
    def is_weight(name):  # RNG states of the dropout layers carry per-process counter names
        return "seed_generator" not in name and name != "verify_threshold"

    stored = {}
    for var in loaded.variables:
        name = var.name[:-2] if var.name.endswith(":0") else var.name
        if is_weight(name):
            stored[name] = var
    wanted = {v.path: v for v in model.variables if is_weight(v.path)}
    missing = sorted(set(wanted) - set(stored))
    extra = sorted(set(stored) - set(wanted))
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
