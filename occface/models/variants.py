"""Where the recognizer variants attach to a backbone, and the checks of the build arguments.

:func:`build_recognizer_graph` builds the functional graph of a
:class:`~occface.models.recognizer.Recognizer` from build arguments checked by
:func:`validate_build_args`; :func:`lcd_layer_names` names the layers around the dropout point
(for inspection).

Where each variant's layers sit (``s = lcd_stage``, ``B`` = last block of stage ``s``)
------------------------------------------------------------------------------------------
The residual branch of every IR block is ``bn1 – conv1 – bn2 – prelu – conv2 – bn3``; the block
output is ``shortcut + branch``. The channel-dropout point depends on ``lcd_position``:

* ``"output"`` (default, the paper's placement): the output of ``stage{s}_block{B}_add``, i.e.
  the tensor stage ``s + 1`` receives, so whole channels of it are zero;
* ``"branch"`` (before PR #14): after ``stage{s}_block{B}_bn3`` and before the add, so the
  identity shortcut keeps most of a dropped channel.

With ``backbone="mobilefacenet"`` the branch ends in ``stage{s}_block{B}_project_bn`` and the
Eq. 1 regularizer goes on ``stage{s}_block{B}_project_conv`` (same rules otherwise).

* ``baseline`` — plain IR-ResNet;
* ``cd`` — :class:`~occface.layers.LCD` (``stage{s}_lcd``) at the dropout point;
* ``cd_sr`` — as ``cd`` plus spatial regularization on the features LCD drops:

  - Eq. 1: :class:`~occface.losses.FilterOrthogonalityRegularizer` (weight ``sr_filter_weight``)
    is the ``kernel_regularizer`` of ``stage{s}_block{B}_conv2`` — the 3×3 convolution whose
    filters produce the dropped channels (only this conv; it depends on weights only, so it
    costs one ``(9, C, C)`` product per step whatever the batch);
  - Eq. 2: :class:`~occface.layers.ResponseDecorrelation` (``stage{s}_sr_response``, weight
    ``sr_response_weight``) on the dropout point's tensor, *before* the dropout;

  so after a training forward pass ``model.losses`` holds exactly these two weighted terms. Both
  use ``sr_reduction`` (``"mean"`` by default, see :mod:`occface.losses`);
* ``lcd`` — ``cd_sr`` plus :class:`~occface.layers.SAM` (``stage{q}_sam``, ``q = sam_stage``)
  reweighting the channels of stage ``q``'s output (for ``q = 4``: right before ``output_bn``);
* ``dropblock`` / ``wcd`` — :class:`~occface.layers.DropBlock` (``stage{s}_dropblock``) /
  :class:`~occface.layers.WeightedChannelDropout` (``stage{s}_wcd``) at the dropout point;
* ``cutout`` — :class:`~occface.layers.Cutout` (``cutout``) on the raw [0, 255] input, before the
  rescaling, so the hole is black (−1 after rescaling).

All dropout-style layers and ``ResponseDecorrelation`` are identities at inference, so the
inference graphs of ``baseline``, ``cd``, ``cd_sr`` (and ``dropblock``, ``wcd``, ``cutout``)
have the same weights and compute the same function; ``lcd`` adds only SAM.
"""

import keras

from occface.choices import LCD_POSITIONS, SR_REDUCTIONS, VARIANTS
from occface.models.iresnet import (STAGE_BLOCKS, check_depth, check_input_shape, check_width,
                                    iresnet_body)
from occface.models.mobilefacenet import HEADS, check_blocks, mobilefacenet_body

LCD_STAGES = (2, 3, 4)
"""Allowed values of ``lcd_stage`` (the paper's Table I)."""
SAM_STAGES = (1, 2, 3, 4)
"""Allowed values of ``sam_stage``."""
BACKBONES = ("iresnet", "mobilefacenet")
"""Allowed values of ``backbone``."""


def _rate(name, value, upper_inclusive=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0) or (not upper_inclusive and v >= 1.0):
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def validate_build_args(args):
    """Check and normalise the build arguments of a recognizer (in place).

    Parameters
    ----------
    args : dict
        Every argument of :func:`~occface.models.build_recognizer` except ``name``.

    Returns
    -------
    dict
        ``args``, with numbers converted (rates to float, sizes to int, shapes to tuples).

    Raises
    ------
    ValueError
        For an unknown variant/depth/stage/reduction or an out-of-range rate, naming the
        allowed values.
    """
    if args["variant"] not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {args['variant']!r}")
    if args["backbone"] not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {args['backbone']!r}")
    if args["lcd_position"] not in LCD_POSITIONS:
        raise ValueError(f"lcd_position must be one of {LCD_POSITIONS}, "
                         f"got {args['lcd_position']!r}")
    args["mbf_blocks"] = check_blocks(args["mbf_blocks"])
    if isinstance(args["mbf_scale"], bool) or not isinstance(args["mbf_scale"], int) \
            or args["mbf_scale"] < 1:
        raise ValueError(f"mbf_scale must be a positive integer, got {args['mbf_scale']!r}")
    if args["mbf_head"] not in HEADS:
        raise ValueError(f"mbf_head must be one of {HEADS}, got {args['mbf_head']!r}")
    args["depth"] = check_depth(args["depth"])
    args["width"] = check_width(args["width"])
    args["input_shape"] = check_input_shape(args["input_shape"])
    if args["lcd_stage"] not in LCD_STAGES or isinstance(args["lcd_stage"], bool):
        raise ValueError(f"lcd_stage must be one of {LCD_STAGES}, got {args['lcd_stage']!r}")
    if args["sam_stage"] not in SAM_STAGES or isinstance(args["sam_stage"], bool):
        raise ValueError(f"sam_stage must be one of {SAM_STAGES}, got {args['sam_stage']!r}")
    args["lcd_min_rate"] = _rate("lcd_min_rate", args["lcd_min_rate"])
    args["lcd_max_rate"] = _rate("lcd_max_rate", args["lcd_max_rate"])
    if args["lcd_min_rate"] > args["lcd_max_rate"]:
        raise ValueError(f"lcd_min_rate must be <= lcd_max_rate, got {args['lcd_min_rate']} > "
                         f"{args['lcd_max_rate']}")
    if args["sr_reduction"] not in SR_REDUCTIONS:
        raise ValueError(f"sr_reduction must be one of {SR_REDUCTIONS}, "
                         f"got {args['sr_reduction']!r}")
    for key in ("sr_filter_weight", "sr_response_weight"):
        try:
            args[key] = float(args[key])
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a non-negative number, got {args[key]!r}") from None
        if not args[key] >= 0.0:
            raise ValueError(f"{key} must be a non-negative number, got {args[key]!r}")
    args["dropout"] = _rate("dropout", args["dropout"], upper_inclusive=False)
    args["dropblock_rate"] = _rate("dropblock_rate", args["dropblock_rate"],
                                   upper_inclusive=False)
    args["wcd_ratio"] = _rate("wcd_ratio", args["wcd_ratio"])
    if args["wcd_ratio"] == 0.0:
        raise ValueError("wcd_ratio must be in (0, 1], got 0")
    args["wcd_q"] = _rate("wcd_q", args["wcd_q"])
    for key in ("sam_reduction", "dropblock_size"):
        v = args[key]
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
        args[key] = int(v)
    if args["cutout_size"] is not None:
        v = args["cutout_size"]
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"cutout_size must be a non-negative integer or None, got {v!r}")
        args["cutout_size"] = int(v)
    if args["seed"] is not None:
        if isinstance(args["seed"], bool) or int(args["seed"]) != args["seed"]:
            raise ValueError(f"seed must be an integer or None, got {args['seed']!r}")
        args["seed"] = int(args["seed"])
    return args


def _seed(base, offset):
    return None if base is None else base + offset


def _variant_layers(a):
    """The variant's layers at the dropout point: ``(layers, filter_regularizer, sam)``.

    ``layers`` are applied in order to the dropped tensor (Eq. 2 term first, then the dropout);
    ``filter_regularizer`` (Eq. 1) goes on the convolution producing that tensor; ``sam`` is the
    SAM layer for stage ``sam_stage`` (``lcd`` only) or ``None``.
    """
    from occface.layers import (LCD, SAM, DropBlock, ResponseDecorrelation,
                                WeightedChannelDropout)
    from occface.losses import FilterOrthogonalityRegularizer

    variant, s = a["variant"], a["lcd_stage"]
    layers, regularizer, sam = [], None, None
    if variant in ("cd_sr", "lcd"):
        regularizer = FilterOrthogonalityRegularizer(a["sr_filter_weight"],
                                                     reduction=a["sr_reduction"])
        layers.append(ResponseDecorrelation(a["sr_response_weight"], a["sr_reduction"],
                                            name=f"stage{s}_sr_response"))
    if variant in ("cd", "cd_sr", "lcd"):
        layers.append(LCD(a["lcd_min_rate"], a["lcd_max_rate"], seed=_seed(a["seed"], 1),
                          name=f"stage{s}_lcd"))
    elif variant == "dropblock":
        layers.append(DropBlock(a["dropblock_size"], a["dropblock_rate"],
                                seed=_seed(a["seed"], 2), name=f"stage{s}_dropblock"))
    elif variant == "wcd":
        layers.append(WeightedChannelDropout(a["wcd_ratio"], a["wcd_q"],
                                             seed=_seed(a["seed"], 3), name=f"stage{s}_wcd"))
    if variant == "lcd":
        q = a["sam_stage"]
        sam = SAM(reduction=a["sam_reduction"], initial_attention=a["sam_initial_attention"],
                  name=f"stage{q}_sam")
    return layers, regularizer, sam


def _chain(layers):
    def fn(t):
        for layer in layers:
            t = layer(t)
        return t
    return fn


def build_recognizer_graph(a):
    """Inputs and embedding outputs for the arguments ``a`` checked by :func:`validate_build_args`.

    Returns
    -------
    tuple
        ``(inputs, outputs)``: the ``(N, H, W, 3)`` image input in [0, 255] and the
        ``(N, embedding_size)`` embedding tensor of the functional graph.
    """
    from occface.layers import Cutout

    variant, s = a["variant"], a["lcd_stage"]
    inputs = keras.Input(shape=a["input_shape"], name="image")
    x = inputs
    if variant == "cutout":
        size = a["cutout_size"]
        if size is None:
            size = min(a["input_shape"][:2]) // 2
        x = Cutout(size=size, seed=_seed(a["seed"], 0), name="cutout")(x)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(x)

    layers, regularizer, sam = _variant_layers(a)
    conv_key = "conv2" if a["backbone"] == "iresnet" else "project"
    kernel_regularizers = {(s, -1): {conv_key: regularizer}} if regularizer is not None else {}
    branch_hooks, stage_layers = {}, {}
    if layers and a["lcd_position"] == "branch":
        branch_hooks[(s, -1)] = _chain(layers)
    elif layers:
        stage_layers[s] = list(layers)
    if sam is not None:
        stage_layers.setdefault(a["sam_stage"], []).append(sam)
    stage_hooks = {stage: _chain(ls) for stage, ls in stage_layers.items()}

    if a["backbone"] == "iresnet":
        outputs = iresnet_body(x, depth=a["depth"], width=a["width"],
                               embedding_size=a["embedding_size"], dropout=a["dropout"],
                               branch_hooks=branch_hooks or None,
                               kernel_regularizers=kernel_regularizers, stage_hooks=stage_hooks)
    else:
        outputs = mobilefacenet_body(x, blocks=a["mbf_blocks"], scale=a["mbf_scale"],
                                     embedding_size=a["embedding_size"], head=a["mbf_head"],
                                     branch_hooks=branch_hooks or None,
                                     kernel_regularizers=kernel_regularizers,
                                     stage_hooks=stage_hooks)
    return inputs, outputs


def lcd_layer_names(depth, lcd_stage, lcd_position="output"):
    """Names of the layers around the channel-dropout point of ``lcd_stage`` (for inspection).

    Returns
    -------
    dict
        ``{"conv": ..., "bn": ..., "add": ..., "point": ...}``: the last 3×3 conv of the stage
        (Eq. 1 acts on it), the BN after it, the residual addition, and the layer whose output
        the dropout acts on (``bn`` for ``lcd_position="branch"``, ``add`` for ``"output"``).
    """
    depth = check_depth(depth)
    if lcd_position not in LCD_POSITIONS:
        raise ValueError(f"lcd_position must be one of {LCD_POSITIONS}, got {lcd_position!r}")
    last = STAGE_BLOCKS[depth][lcd_stage - 1]
    prefix = f"stage{lcd_stage}_block{last}"
    names = {"conv": f"{prefix}_conv2", "bn": f"{prefix}_bn3", "add": f"{prefix}_add"}
    names["point"] = names["bn"] if lcd_position == "branch" else names["add"]
    return names
