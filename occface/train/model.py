"""The recognizer and ArcFace head of a :class:`~occface.train.config.RecognizerConfig`.

:func:`build_model_and_head` builds both (under ``strategy.scope()``); :func:`all_layers` walks
every layer of a model, nested ones included (the training step collects the spatial-
regularization terms by layer with it); :func:`set_batchnorm_synchronized` switches BatchNorm
between per-replica and cross-replica statistics.
"""

import keras


def build_model_and_head(config, num_classes):
    """The recognizer and its ArcFace head for ``config`` (call under ``strategy.scope()``).

    Parameters
    ----------
    config : RecognizerConfig
    num_classes : int
        Training identities (rows of the ArcFace weight matrix).

    Returns
    -------
    tuple
        ``(model, head)``: the :func:`occface.models.build_recognizer` model and a built
        :class:`occface.layers.ArcFace`.
    """
    from occface.layers import ArcFace
    from occface.models import build_recognizer
    model = build_recognizer(
        depth=config.depth, variant=config.variant,
        input_shape=(config.input_size, config.input_size, 3),
        embedding_size=config.embedding_size, width=config.width, lcd_stage=config.lcd_stage,
        lcd_position=config.lcd_position, sam_stage=config.sam_stage,
        lcd_min_rate=config.lcd_min_rate, lcd_max_rate=config.lcd_max_rate,
        sr_filter_weight=config.sr_filter_weight, sr_response_weight=config.sr_response_weight,
        sr_reduction=config.sr_reduction, dropout=config.dropout, seed=config.seed)
    head = ArcFace(num_classes, margin=config.arcface_margin, scale=config.arcface_scale,
                   name="arcface")
    head.build([(None, config.embedding_size), (None,)])
    return model, head


def set_batchnorm_synchronized(model, synchronized):
    """Set ``synchronized`` on every BatchNormalization layer (cross-replica statistics).

    Returns
    -------
    int
        The number of BatchNormalization layers set.
    """
    count = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = bool(synchronized)
            count += 1
    return count


def all_layers(model):
    """Every layer of ``model`` once, ``model`` itself and nested layers/models included.

    Yields
    ------
    keras.layers.Layer
    """
    stack, seen = [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])
        stack.extend(getattr(layer, "_layers", []) or [])
