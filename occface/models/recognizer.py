"""The LCD face recognizer and the baselines it is compared with, on an IR-ResNet backbone.

:func:`build_recognizer` returns a :class:`Recognizer` (a functional ``keras.Model`` subclass)
mapping images ``(N, H, W, 3)`` with pixel values in [0, 255] to un-normalised embeddings
``(N, embedding_size)``. The first layer is ``Rescaling(1/127.5, offset=-1)``.

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

Serialization
-------------
:class:`Recognizer` stores its build arguments as its Keras config, so ``model.save("m.keras")``
/ ``keras.models.load_model`` rebuild the same graph and restore the weights;
:func:`recognizer_config` returns those arguments.
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

_DEFAULTS = dict(
    depth=50, variant="lcd", input_shape=(112, 112, 3), embedding_size=512, width=64,
    lcd_stage=3, sam_stage=4, lcd_min_rate=0.0, lcd_max_rate=0.6, sr_filter_weight=100.0,
    sr_response_weight=1.0, sr_reduction="mean", dropout=0.0, sam_reduction=16,
    sam_initial_attention=0.95, cutout_size=None, dropblock_size=7, dropblock_rate=0.1,
    wcd_ratio=0.9, wcd_q=0.9, seed=None, backbone="iresnet", lcd_position="output",
    mbf_blocks=(1, 4, 6, 2), mbf_scale=2, mbf_head="fc",
)


def _rate(name, value, upper_inclusive=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0) or (not upper_inclusive and v >= 1.0):
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def _validate(args):
    """Check and normalise the build arguments (in place); raise ``ValueError`` on bad ones."""
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


def _build_graph(a):
    """Inputs and embedding outputs for the validated arguments ``a``."""
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


@keras.saving.register_keras_serializable(package="occface")
class Recognizer(keras.Model):
    """IR-ResNet face recognizer with one of the :data:`VARIANTS` (a functional model).

    Construct it with :func:`build_recognizer` (same arguments). Its Keras config is the build
    arguments, so ``.keras`` save/load and ``Recognizer.from_config`` rebuild the same graph.

    Input: ``(N, H, W, 3)`` images in [0, 255]. Output: ``(N, embedding_size)`` float32
    embeddings (un-normalised).
    """

    def __init__(self, depth=50, variant="lcd", input_shape=(112, 112, 3), embedding_size=512,
                 width=64, lcd_stage=3, sam_stage=4, lcd_min_rate=0.0, lcd_max_rate=0.6,
                 sr_filter_weight=100.0, sr_response_weight=1.0, sr_reduction="mean",
                 dropout=0.0, sam_reduction=16, sam_initial_attention=0.95, cutout_size=None,
                 dropblock_size=7, dropblock_rate=0.1, wcd_ratio=0.9, wcd_q=0.9, seed=None,
                 backbone="iresnet", lcd_position="output", mbf_blocks=(1, 4, 6, 2),
                 mbf_scale=2, mbf_head="fc", name=None, trainable=True):
        args = _validate(dict(
            depth=depth, variant=variant, input_shape=input_shape, embedding_size=embedding_size,
            width=width, lcd_stage=lcd_stage, sam_stage=sam_stage, lcd_min_rate=lcd_min_rate,
            lcd_max_rate=lcd_max_rate, sr_filter_weight=sr_filter_weight,
            sr_response_weight=sr_response_weight, sr_reduction=sr_reduction, dropout=dropout,
            sam_reduction=sam_reduction, sam_initial_attention=sam_initial_attention,
            cutout_size=cutout_size, dropblock_size=dropblock_size,
            dropblock_rate=dropblock_rate, wcd_ratio=wcd_ratio, wcd_q=wcd_q, seed=seed,
            backbone=backbone, lcd_position=lcd_position, mbf_blocks=mbf_blocks,
            mbf_scale=mbf_scale, mbf_head=mbf_head))
        inputs, outputs = _build_graph(args)
        prefix = f"ir{args['depth']}" if args["backbone"] == "iresnet" else "mbf"
        super().__init__(inputs, outputs, name=name or f"{prefix}_{args['variant']}",
                         trainable=trainable)
        self._build_args = args

    @property
    def build_args(self):
        """The (validated) build arguments, a new dict (``input_shape`` as a list)."""
        args = dict(self._build_args)
        args["input_shape"] = list(args["input_shape"])
        args["mbf_blocks"] = list(args["mbf_blocks"])
        return args

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.build_args}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**upgrade_config(config))


def upgrade_config(config):
    """Build arguments written before ``lcd_position`` existed mean ``lcd_position="branch"``.

    Returns a new dict; configs that name ``lcd_position`` are returned unchanged.
    """
    config = dict(config)
    config.setdefault("lcd_position", "branch")
    return config


def build_recognizer(depth=50, variant="lcd", input_shape=(112, 112, 3), embedding_size=512,
                     width=64, lcd_stage=3, sam_stage=4, lcd_min_rate=0.0, lcd_max_rate=0.6,
                     sr_filter_weight=100.0, sr_response_weight=1.0, sr_reduction="mean",
                     dropout=0.0, sam_reduction=16, sam_initial_attention=0.95, cutout_size=None,
                     dropblock_size=7, dropblock_rate=0.1, wcd_ratio=0.9, wcd_q=0.9, seed=None,
                     backbone="iresnet", lcd_position="output", mbf_blocks=(1, 4, 6, 2),
                     mbf_scale=2, mbf_head="fc", name=None):
    """Build the face recognizer: images ``(N, H, W, 3)`` in [0, 255] → embeddings ``(N, D)``.

    See the module docstring for exactly where each variant's layers sit.

    Parameters
    ----------
    depth : int
        IR-ResNet depth, one of 18, 34, 50, 100.
    variant : str
        One of :data:`VARIANTS`: ``"baseline"``, ``"cd"`` (LCD channel dropout), ``"cd_sr"``
        (+ spatial regularization), ``"lcd"`` (CD + SR + SAM), ``"cutout"``, ``"dropblock"``,
        ``"wcd"``.
    input_shape : tuple
        ``(H, W, 3)``; 112×112 for ArcFace-aligned faces, 64×64 for CPU experiments.
    embedding_size : int
        Embedding size ``D``.
    width : int
        64 = standard network (IR-50: 43.6 M parameters at 112×112); 4–16 for CPU experiments.
    lcd_stage : int
        Stage (2, 3 or 4) whose last 3×3 conv's features are dropped (also the location of the
        DropBlock / WCD baselines and of SR).
    sam_stage : int
        Stage (1–4) whose output SAM reweights (``lcd`` only).
    lcd_min_rate, lcd_max_rate : float
        Per-sample drop ratio range of LCD, ``0 <= min <= max <= 1``.
    sr_filter_weight, sr_response_weight : float
        Weights of Eq. 1 (filter orthogonality) and Eq. 2 (response decorrelation).
    sr_reduction : {"mean", "sum"}
        Normalisation of both SR terms (``"mean"``: divided by the number of channel pairs).
    dropout : float
        Dropout rate before the embedding layer, in [0, 1).
    sam_reduction : int
        SAM's reduction ratio.
    sam_initial_attention : float
        SAM's attention value at initialisation (near 1 so SAM starts near the identity).
    cutout_size : int or None
        Side of the Cutout square in pixels; ``None`` = half the smaller input side.
    dropblock_size, dropblock_rate : int, float
        DropBlock block side and drop rate.
    wcd_ratio, wcd_q : float
        WCD's weighted-random-selection keep ratio and RNG keep probability.
    seed : int or None
        Base seed of the stochastic layers (each gets its own offset).
    backbone : {"iresnet", "mobilefacenet"}
        IR-ResNet (``depth``, ``width``) or insightface's MobileFaceNet (``mbf_blocks``,
        ``mbf_scale``, ``mbf_head``; see :mod:`occface.models.mobilefacenet`).
    lcd_position : {"output", "branch"}
        ``"output"``: LCD / DropBlock / WCD and the Eq. 2 term act on the output of stage
        ``lcd_stage``'s last block, after the residual add — the tensor the next stage receives,
        as in the paper. ``"branch"``: on that block's residual branch before the add (whole
        channels are zeroed there but the identity shortcut restores most of them).
    mbf_blocks, mbf_scale, mbf_head
        MobileFaceNet layout (``backbone="mobilefacenet"`` only).
    name : str or None
        Model name; default ``"ir{depth}_{variant}"`` / ``"mbf_{variant}"``.

    Returns
    -------
    Recognizer
        A functional ``keras.Model``.

    Raises
    ------
    ValueError
        For an unknown variant/depth/stage/reduction or an out-of-range rate, naming the
        allowed values.
    """
    return Recognizer(depth=depth, variant=variant, input_shape=input_shape,
                      embedding_size=embedding_size, width=width, lcd_stage=lcd_stage,
                      sam_stage=sam_stage, lcd_min_rate=lcd_min_rate, lcd_max_rate=lcd_max_rate,
                      sr_filter_weight=sr_filter_weight, sr_response_weight=sr_response_weight,
                      sr_reduction=sr_reduction, dropout=dropout, sam_reduction=sam_reduction,
                      sam_initial_attention=sam_initial_attention, cutout_size=cutout_size,
                      dropblock_size=dropblock_size, dropblock_rate=dropblock_rate,
                      wcd_ratio=wcd_ratio, wcd_q=wcd_q, seed=seed, backbone=backbone,
                      lcd_position=lcd_position, mbf_blocks=mbf_blocks, mbf_scale=mbf_scale,
                      mbf_head=mbf_head, name=name)


def recognizer_config(model):
    """The build arguments of a recognizer, such that ``build_recognizer(**cfg)`` rebuilds it.

    Parameters
    ----------
    model : Recognizer
        A model from :func:`build_recognizer` (or loaded from a ``.keras`` file).

    Returns
    -------
    dict
        JSON-serialisable build arguments (including ``name``).
    """
    if not isinstance(model, Recognizer):
        raise ValueError(f"recognizer_config needs a Recognizer from build_recognizer, got "
                         f"{type(model).__name__}")
    return {**model.build_args, "name": model.name}


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


def build_mobilefacenet(variant="baseline", input_shape=(112, 112, 3), embedding_size=512,
                        blocks=(1, 4, 6, 2), scale=2, head="fc", lcd_stage=3,
                        lcd_position="output", name=None, **kwargs):
    """insightface's MobileFaceNet as a :class:`Recognizer`: ``(N, 112, 112, 3)`` → ``(N, D)``.

    Images are RGB in [0, 255] (``Rescaling(1/127.5, offset=-1)`` inside, the normalisation
    insightface's models expect). The variants attach exactly as in :func:`build_recognizer`
    (LCD / SR / DropBlock / WCD at ``lcd_stage``, SAM at ``sam_stage``; all identities at
    inference, so the inference cost of ``cd``/``cd_sr``/``dropblock``/``wcd`` is the
    baseline's).

    Parameters
    ----------
    blocks, scale, head
        See :func:`occface.models.mobilefacenet.mobilefacenet_body`; the defaults are
        insightface's ``w600k_mbf`` (``import_onnx`` fills its weights).
    **kwargs
        Any other :func:`build_recognizer` argument (``sam_stage``, ``lcd_max_rate`` …).
    """
    return Recognizer(variant=variant, input_shape=input_shape, embedding_size=embedding_size,
                      backbone="mobilefacenet", mbf_blocks=blocks, mbf_scale=scale,
                      mbf_head=head, lcd_stage=lcd_stage, lcd_position=lcd_position, name=name,
                      **kwargs)
