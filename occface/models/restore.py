"""Rebuild a Keras :class:`~occface.models.Recognizer` from an occface ``embed`` SavedModel.

An export serves uint8 faces, so gradients cannot flow through its signatures; ID-GAN's identity
terms need a differentiable recognizer with its intermediate layers. The export tracks every
variable of the recognizer under its Keras path (``stem_conv/kernel`` …), so the same
architecture built with :func:`~occface.models.build_recognizer` can take them back exactly.
The architecture comes from the export metadata (``recognizer_config``, written by
:func:`occface.export.export_model`) or is given by the caller.
"""


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
    from occface.export import METADATA_FILE, latest_version_dir, read_metadata
    from occface.models.recognizer import build_recognizer

    version_dir = latest_version_dir(path)
    if config is None:
        config = read_metadata(version_dir).get("recognizer_config")
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
