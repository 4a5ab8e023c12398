"""IR-ResNet ("improved residual network") backbone as used by ArcFace / insightface.

Structure (Deng et al., ArcFace; insightface ``arcface_torch/backbones/iresnet.py``):

* stem: conv3×3 (``width`` filters, stride 1) – BN – PReLU;
* four stages with ``width·(1, 2, 4, 8)`` channels, each halving the resolution in its first
  block; blocks per stage ``STAGE_BLOCKS[depth]``;
* block ("IBasicBlock"): residual branch BN – conv3×3 – BN – PReLU – conv3×3(stride) – BN,
  shortcut identity, or conv1×1(stride) – BN when the shape changes (always for block 1 of a
  stage, since every stage starts with stride 2);
* output: BN – dropout – flatten – Dense(``embedding_size``) – BN (no learned scale; the
  "features" BN of arcface_torch, whose weight is frozen at 1).

``width=64`` is the standard network (IR-50 at 112×112: 43.6 M trainable parameters); smaller
widths serve CPU experiments. Strided 3×3 convolutions pad one pixel on every side (as PyTorch's
``padding=1``), so the residual branch and the 1×1 shortcut sample the same grid.

Layer names are stable and readable, 1-based: ``stem_conv``, ``stage3_block6_bn2``,
``stage2_block1_shortcut_conv``, ``output_bn``, ``embedding``, ``embedding_bn`` … Variants of the
recognizer (:mod:`occface.models.variants`) hook into :func:`iresnet_body` to insert their
layers at named points without copying the backbone.
"""

import keras

STAGE_BLOCKS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
}
"""Blocks per stage for each supported depth."""

STAGE_MULTIPLIERS = (1, 2, 4, 8)
"""Stage channel counts relative to ``width`` (64 → 64, 128, 256, 512)."""

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
PRELU_INIT = 0.25


def check_depth(depth):
    """Raise ``ValueError`` unless ``depth`` is one of :data:`STAGE_BLOCKS`."""
    if isinstance(depth, bool) or depth not in STAGE_BLOCKS:
        raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth!r}")
    return int(depth)


def check_width(width):
    """Raise ``ValueError`` unless ``width`` is a positive integer (64 = standard)."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (64 = standard IR-ResNet), "
                         f"got {width!r}")
    return width


def check_input_shape(input_shape):
    """Validate ``(H, W, C)`` with H, W ≥ 16 (four stride-2 stages); returns a tuple of ints."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}")
    if len(shape) != 3 or shape[0] < 16 or shape[1] < 16 or shape[2] < 1:
        raise ValueError(f"input_shape must be (height, width, channels) with height and width "
                         f">= 16, got {input_shape!r}")
    return shape


def stage_channels(width):
    """Channel count of each of the four stages: ``width·(1, 2, 4, 8)``."""
    return tuple(width * m for m in STAGE_MULTIPLIERS)


def _bn(name, **kwargs):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name,
                                           **kwargs)


def _prelu(name):
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(PRELU_INIT),
                              shared_axes=[1, 2], name=name)


def _conv3x3(filters, stride, name, kernel_regularizer=None):
    return keras.layers.Conv2D(filters, 3, strides=stride,
                               padding="same" if stride == 1 else "valid", use_bias=False,
                               kernel_regularizer=kernel_regularizer, name=name)


def ibasic_block(x, filters, stride, name, kernel_regularizers=None, branch_hook=None):
    """One IR block on ``x`` ``(N, H, W, C_in)`` → ``(N, H/stride, W/stride, filters)``.

    Parameters
    ----------
    kernel_regularizers : dict, optional
        ``{"conv1": reg, "conv2": reg}`` kernel regularizers for the two 3×3 convolutions.
    branch_hook : callable, optional
        ``branch_hook(t) -> t`` applied to the residual branch after its final BN (``bn3``, the BN
        that follows the second 3×3 conv) and before the addition with the shortcut.
    """
    regs = kernel_regularizers or {}
    in_channels = x.shape[-1]
    y = _bn(f"{name}_bn1")(x)
    y = _conv3x3(filters, 1, f"{name}_conv1", regs.get("conv1"))(y)
    y = _bn(f"{name}_bn2")(y)
    y = _prelu(f"{name}_prelu")(y)
    if stride != 1:
        y = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(y)
    y = _conv3x3(filters, stride, f"{name}_conv2", regs.get("conv2"))(y)
    y = _bn(f"{name}_bn3")(y)
    if branch_hook is not None:
        y = branch_hook(y)
    if stride != 1 or in_channels != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                       name=f"{name}_shortcut_conv")(x)
        shortcut = _bn(f"{name}_shortcut_bn")(shortcut)
    else:
        shortcut = x
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def iresnet_body(x, depth=50, width=64, embedding_size=512, dropout=0.0, *, branch_hooks=None,
                 kernel_regularizers=None, stage_hooks=None):
    """Apply the IR-ResNet to a normalised image tensor; returns the embedding tensor.

    Parameters
    ----------
    x : KerasTensor
        ``(N, H, W, C)`` images already scaled to [-1, 1].
    depth : int
        18, 34, 50 or 100 (:data:`STAGE_BLOCKS`).
    width : int
        Channels of the stem and of stage 1; stages have ``width·(1, 2, 4, 8)``.
    embedding_size : int
        Size ``D`` of the output embedding.
    dropout : float
        Rate of the dropout between the output BN and the flatten (0 = none).
    branch_hooks : dict, optional
        ``{(stage, block): fn}`` (1-based) → ``fn(t)`` on that block's residual branch after its
        last BN (see :func:`ibasic_block`). ``block=-1`` means the stage's last block.
    kernel_regularizers : dict, optional
        ``{(stage, block): {"conv1": reg, "conv2": reg}}``; ``block=-1`` = last block.
    stage_hooks : dict, optional
        ``{stage: fn}`` → ``fn(t)`` on the output of that stage (after its last block; for stage 4
        this is before the output BN).

    Returns
    -------
    KerasTensor
        ``(N, embedding_size)`` embeddings (output of the final BN).
    """
    depth = check_depth(depth)
    width = check_width(width)
    if not isinstance(embedding_size, int) or isinstance(embedding_size, bool) \
            or embedding_size < 1:
        raise ValueError(f"embedding_size must be a positive integer, got {embedding_size!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    blocks = STAGE_BLOCKS[depth]

    def _resolve(mapping):
        out = {}
        for key, value in (mapping or {}).items():
            stage, block = key
            out[(stage, blocks[stage - 1] if block == -1 else block)] = value
        return out

    branch_hooks = _resolve(branch_hooks)
    kernel_regularizers = _resolve(kernel_regularizers)
    stage_hooks = dict(stage_hooks or {})

    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = _prelu("stem_prelu")(x)
    for stage, (n_blocks, filters) in enumerate(zip(blocks, stage_channels(width)), start=1):
        for block in range(1, n_blocks + 1):
            x = ibasic_block(x, filters, 2 if block == 1 else 1, f"stage{stage}_block{block}",
                             kernel_regularizers=kernel_regularizers.get((stage, block)),
                             branch_hook=branch_hooks.get((stage, block)))
        if stage in stage_hooks:
            x = stage_hooks[stage](x)
    x = _bn("output_bn")(x)
    x = keras.layers.Dropout(float(dropout), name="output_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(embedding_size, name="embedding")(x)
    # arcface_torch freezes this BN's weight at 1: no learned scale. Kept in float32 so the
    # embeddings are float32 under a mixed_float16 policy.
    x = _bn("embedding_bn", scale=False, dtype="float32")(x)
    return x


def iresnet(depth=50, input_shape=(112, 112, 3), embedding_size=512, width=64, dropout=0.0,
            name=None):
    """A plain IR-ResNet face model: images ``(N, H, W, 3)`` in [0, 255] → ``(N, D)`` embeddings.

    The first layer is ``Rescaling(1/127.5, offset=-1)`` (package image convention). This is the
    same graph as ``build_recognizer(variant="baseline")`` as a plain ``keras.Model``.

    Parameters
    ----------
    depth : int
        18, 34, 50 or 100.
    input_shape : tuple
        ``(H, W, 3)``; 112×112 for aligned ArcFace faces.
    embedding_size : int
        Embedding size ``D``.
    width : int
        64 = standard network; smaller for CPU experiments.
    dropout : float
        Dropout rate before the embedding layer.
    """
    input_shape = check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    outputs = iresnet_body(x, depth=depth, width=width, embedding_size=embedding_size,
                           dropout=dropout)
    return keras.Model(inputs, outputs, name=name or f"iresnet{depth}")


def iresnet_param_count(depth=50, input_shape=(112, 112, 3), embedding_size=512, width=64,
                        trainable_only=True):
    """Number of parameters of :func:`iresnet`, computed analytically (no model is built).

    Parameters
    ----------
    trainable_only : bool
        ``True``: learned parameters only (BN γ/β, not its moving statistics), the figure papers
        quote (IR-50, width 64, 112×112: 43.6 M). ``False``: also the BN moving mean/variance,
        i.e. Keras's ``model.count_params()``.
    """
    depth = check_depth(depth)
    h, w, c = check_input_shape(input_shape)
    bn = 2 if trainable_only else 4          # params per BN channel (with scale)
    bn_noscale = 1 if trainable_only else 3  # embedding BN has no γ
    total = 9 * c * width + bn * width + width  # stem conv, BN, PReLU
    c_in = width
    for n_blocks, filters in zip(STAGE_BLOCKS[depth], stage_channels(width)):
        for block in range(n_blocks):
            total += bn * c_in + 9 * c_in * filters + bn * filters + filters  # bn1 conv1 bn2 prelu
            total += 9 * filters * filters + bn * filters                      # conv2 bn3
            if block == 0:
                total += c_in * filters + bn * filters                         # shortcut
            c_in = filters
        h, w = (h + 1) // 2, (w + 1) // 2
    total += bn * c_in                                                         # output BN
    total += h * w * c_in * embedding_size + embedding_size                    # dense
    total += bn_noscale * embedding_size                                       # embedding BN
    return total


def iresnet_weight_order(depth=50):
    """Weighted layers in insightface's forward order: ``[(layer_name, kind), ...]``.

    ``kind`` is ``"conv"``, ``"bn"``, ``"prelu"`` or ``"dense"``; a block lists its residual
    branch before its shortcut, as ``IBasicBlock.forward`` computes them (and so as an ONNX export
    lists them). Used by :func:`occface.models.import_onnx`.
    """
    depth = check_depth(depth)
    order = [("stem_conv", "conv"), ("stem_bn", "bn"), ("stem_prelu", "prelu")]
    for stage, n_blocks in enumerate(STAGE_BLOCKS[depth], start=1):
        for block in range(1, n_blocks + 1):
            p = f"stage{stage}_block{block}"
            order += [(f"{p}_bn1", "bn"), (f"{p}_conv1", "conv"), (f"{p}_bn2", "bn"),
                      (f"{p}_prelu", "prelu"), (f"{p}_conv2", "conv"), (f"{p}_bn3", "bn")]
            if block == 1:
                order += [(f"{p}_shortcut_conv", "conv"), (f"{p}_shortcut_bn", "bn")]
    return order + [("output_bn", "bn"), ("embedding", "dense"), ("embedding_bn", "bn")]
