"""MobileFaceNet backbone in insightface's ``arcface_torch`` layout (``backbones/mobilefacenet.py``).

Structure (Chen et al., MobileFaceNets; insightface's variant with ``scale`` and ``blocks``):

* stem: conv3×3 (``64·scale`` filters, stride 2) – BN – PReLU;
* stage 1 (56×56 at 112 px): ``blocks[0] == 1``: one grouped conv3×3 (64 groups) – BN – PReLU;
  else ``blocks[0]`` residual bottlenecks;
* stages 2, 3, 4 each start with a strided bottleneck (``down``) and continue with
  ``blocks[s-1]`` residual bottlenecks (``block1`` …);
* bottleneck ("DepthWise"): ``expand`` 1×1 conv – BN – PReLU → ``dw`` depthwise 3×3 conv – BN –
  PReLU → ``project`` 1×1 conv – BN (linear), plus the identity for residual blocks;
* ``conv_sep``: 1×1 conv to 512 – BN – PReLU;
* head ``"fc"`` (the layout of insightface's released ``w600k_mbf``): 1×1 conv to 64 – BN – PReLU
  – flatten – Dense(``embedding_size``) – BN; head ``"gdc"`` (today's ``arcface_torch``): 7×7
  depthwise conv – BN – flatten – Dense (no bias) – BN.

Channels per stage (expand width in brackets) for ``scale=2``: stage 1 128, stage 2 128 (128),
stage 3 256 (256 down, 256), stage 4 256 (512 down, 256). ``blocks=(1, 4, 6, 2), scale=2``
is insightface's ``mbf`` (about 1.1 M backbone + 1.6 M head parameters at 112×112, 512-d).

Layer names are stable, 1-based: ``stem_conv``, ``stage1_dw_conv``, ``stage3_down_expand_conv``,
``stage3_block6_project_bn``, ``stage3_block6_add``, ``conv_sep_conv``, ``head_conv``,
``embedding``, ``embedding_bn``. :func:`mobilefacenet_body` takes the same hooks as
:func:`occface.models.iresnet.iresnet_body`, so the recognizer variants attach at the same
named points.
"""

import keras

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
PRELU_INIT = 0.25
HEADS = ("fc", "gdc")
DEFAULT_BLOCKS = (1, 4, 6, 2)


def check_blocks(blocks):
    """Validate ``blocks`` (4 positive ints); returns a tuple."""
    try:
        out = tuple(int(b) for b in blocks)
    except (TypeError, ValueError):
        raise ValueError(f"mbf_blocks must be 4 positive integers, got {blocks!r}") from None
    if len(out) != 4 or min(out) < 1 or any(int(b) != b for b in blocks):
        raise ValueError(f"mbf_blocks must be 4 positive integers, got {blocks!r}")
    return out


@keras.saving.register_keras_serializable(package="occface")
class GroupedConv2D(keras.layers.Layer):
    """Grouped 2-D convolution computed as one depthwise convolution plus a sum.

    Same function and kernel layout as ``keras.layers.Conv2D(filters, k, groups=g,
    use_bias=False)`` — kernel ``(kh, kw, C_in / g, filters)`` — but TensorFlow's CPU kernels run
    a grouped ``Conv2D`` through a slow fallback (MobileFaceNet's 64-group stage-1 conv took
    2.2 s per batch of 64 faces here), while a depthwise conv with multiplier
    ``filters / g`` followed by a sum over each group's inputs is an ordinary fast op.

    Input ``(N, H, W, C_in)`` → output ``(N, H', W', filters)``.
    """

    def __init__(self, filters, kernel_size, groups, strides=1, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) \
            else tuple(kernel_size)
        self.strides, self.padding = strides, padding
        if self.filters % self.groups:
            raise ValueError(f"filters ({filters}) must be divisible by groups ({groups})")

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        if c_in % self.groups:
            raise ValueError(f"input channels ({c_in}) must be divisible by groups "
                             f"({self.groups})")
        self.kernel = self.add_weight(
            shape=self.kernel_size + (c_in // self.groups, self.filters), name="kernel",
            initializer="glorot_uniform")

    def call(self, x):
        from keras import ops
        kh, kw, in_g, out = self.kernel.shape
        g, out_g = self.groups, out // self.groups
        # w[g*in_g + i, j] = K[i, g*out_g + j]: (kh, kw, in_g, g, out_g) → (kh, kw, g, in_g, out_g)
        w = ops.transpose(ops.reshape(self.kernel, (kh, kw, in_g, g, out_g)), (0, 1, 3, 2, 4))
        y = ops.depthwise_conv(x, ops.reshape(w, (kh, kw, g * in_g, out_g)),
                               strides=self.strides, padding=self.padding)
        shape = ops.shape(y)
        y = ops.reshape(y, (shape[0], shape[1], shape[2], g, in_g, out_g))
        return ops.reshape(ops.sum(y, axis=4), (shape[0], shape[1], shape[2], out))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.strides if isinstance(self.strides, int) else self.strides[0]
        def out(d, k):
            if d is None:
                return None
            return (d - k) // s + 1 if self.padding == "valid" else -(-d // s)
        return (n, out(h, self.kernel_size[0]), out(w, self.kernel_size[1]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "groups": self.groups,
                "strides": self.strides, "padding": self.padding}


def _bn(name, **kwargs):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name,
                                           **kwargs)


def _prelu(name):
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(PRELU_INIT),
                              shared_axes=[1, 2], name=name)


def _spatial_conv(x, filters, stride, name, groups=1, depthwise=False):
    """3×3 conv with PyTorch's ``padding=1`` (explicit zero padding before a strided conv)."""
    if stride != 1:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    padding = "same" if stride == 1 else "valid"
    if depthwise:
        return keras.layers.DepthwiseConv2D(3, strides=stride, padding=padding, use_bias=False,
                                            name=f"{name}_conv")(x)
    if groups > 1:
        return GroupedConv2D(filters, 3, groups, strides=stride, padding=padding,
                             name=f"{name}_conv")(x)
    return keras.layers.Conv2D(filters, 3, strides=stride, padding=padding, use_bias=False,
                               name=f"{name}_conv")(x)


def _pointwise(x, filters, name, kernel_regularizer=None):
    return keras.layers.Conv2D(filters, 1, use_bias=False, kernel_regularizer=kernel_regularizer,
                               name=f"{name}_conv")(x)


def bottleneck(x, out_channels, expand, stride, name, residual, kernel_regularizers=None,
               branch_hook=None):
    """insightface's ``DepthWise`` block on ``x`` ``(N, H, W, C)`` → ``(N, H/s, W/s, out)``.

    Parameters
    ----------
    expand : int
        Channels of the 1×1 expansion and of the depthwise conv (insightface's ``groups``).
    residual : bool
        Add the identity (needs ``stride == 1`` and ``C == out_channels``).
    kernel_regularizers : dict, optional
        ``{"project": reg}``: kernel regularizer of the final 1×1 projection.
    branch_hook : callable, optional
        ``fn(t) -> t`` on the residual branch after ``project_bn``, before the addition.
    """
    regs = kernel_regularizers or {}
    y = _pointwise(x, expand, f"{name}_expand")
    y = _bn(f"{name}_expand_bn")(y)
    y = _prelu(f"{name}_expand_prelu")(y)
    y = _spatial_conv(y, expand, stride, f"{name}_dw", depthwise=True)
    y = _bn(f"{name}_dw_bn")(y)
    y = _prelu(f"{name}_dw_prelu")(y)
    y = _pointwise(y, out_channels, f"{name}_project", regs.get("project"))
    y = _bn(f"{name}_project_bn")(y)
    if branch_hook is not None:
        y = branch_hook(y)
    if not residual:
        return y
    return keras.layers.Add(name=f"{name}_add")([x, y])


def mobilefacenet_body(x, blocks=DEFAULT_BLOCKS, scale=2, embedding_size=512, head="fc", *,
                       branch_hooks=None, kernel_regularizers=None, stage_hooks=None):
    """Apply MobileFaceNet to a normalised image tensor; returns the embedding tensor.

    Parameters
    ----------
    x : KerasTensor
        ``(N, H, W, 3)`` images scaled to [-1, 1]; 112×112 for pretrained weights.
    blocks : tuple of 4 int
        Residual bottlenecks per stage (insightface ``mbf``: ``(1, 4, 6, 2)``).
    scale : int
        Width multiplier (``64·scale`` stem channels; ``mbf`` 2, ``mbf_large`` 4).
    embedding_size : int
        Size ``D`` of the embedding.
    head : {"fc", "gdc"}
        Embedding head (module docstring).
    branch_hooks : dict, optional
        ``{(stage, block): fn}`` → ``fn(t)`` on that residual bottleneck's branch after its
        projection BN; ``block=-1`` = the stage's last block (stages 2–4, and stage 1 when
        ``blocks[0] > 1``).
    kernel_regularizers : dict, optional
        ``{(stage, block): {"project": reg}}``; ``block=-1`` = last block.
    stage_hooks : dict, optional
        ``{stage: fn}`` → ``fn(t)`` on the output of the stage's last block (for stage 4 before
        ``conv_sep``).

    Returns
    -------
    KerasTensor
        ``(N, embedding_size)`` embeddings (output of the final BN).
    """
    blocks = check_blocks(blocks)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"mbf_scale must be a positive integer, got {scale!r}")
    if head not in HEADS:
        raise ValueError(f"mbf_head must be one of {HEADS}, got {head!r}")

    def _resolve(mapping):
        return {(s, blocks[s - 1] if b == -1 else b): v for (s, b), v in (mapping or {}).items()}

    branch_hooks = _resolve(branch_hooks)
    kernel_regularizers = _resolve(kernel_regularizers)
    stage_hooks = dict(stage_hooks or {})
    c = 64 * scale

    x = _spatial_conv(x, c, 2, "stem")
    x = _bn("stem_bn")(x)
    x = _prelu("stem_prelu")(x)
    if blocks[0] == 1:
        x = _spatial_conv(x, c, 1, "stage1_dw", groups=64 if c % 64 == 0 else 1)
        x = _bn("stage1_dw_bn")(x)
        x = _prelu("stage1_dw_prelu")(x)
    else:
        for b in range(1, blocks[0] + 1):
            x = bottleneck(x, c, 128, 1, f"stage1_block{b}", True,
                           kernel_regularizers.get((1, b)), branch_hooks.get((1, b)))
    if 1 in stage_hooks:
        x = stage_hooks[1](x)
    # (out channels, expand of the strided block, expand of the residual blocks) per stage
    layout = {2: (c, 128, 128), 3: (2 * c, 256, 256), 4: (2 * c, 512, 256)}
    for stage in (2, 3, 4):
        out, down_expand, expand = layout[stage]
        x = bottleneck(x, out, down_expand, 2, f"stage{stage}_down", False)
        for b in range(1, blocks[stage - 1] + 1):
            x = bottleneck(x, out, expand, 1, f"stage{stage}_block{b}", True,
                           kernel_regularizers.get((stage, b)), branch_hooks.get((stage, b)))
        if stage in stage_hooks:
            x = stage_hooks[stage](x)
    x = _pointwise(x, 512, "conv_sep")
    x = _bn("conv_sep_bn")(x)
    x = _prelu("conv_sep_prelu")(x)
    if head == "fc":
        x = _pointwise(x, 64, "head")
        x = _bn("head_bn")(x)
        x = _prelu("head_prelu")(x)
    else:
        x = keras.layers.DepthwiseConv2D((x.shape[1], x.shape[2]), use_bias=False,
                                         name="head_conv")(x)
        x = _bn("head_bn")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(embedding_size, use_bias=head == "fc", name="embedding")(x)
    return _bn("embedding_bn", dtype="float32")(x)


def mobilefacenet_weight_order(blocks=DEFAULT_BLOCKS, head="fc"):
    """Weighted layers in insightface's forward order: ``[(layer_name, kind), ...]``.

    ``kind`` is ``"conv"``, ``"bn"``, ``"prelu"`` or ``"dense"``. This is the order in which an
    ONNX export of insightface's PyTorch model lists them, used by
    :func:`occface.models.import_onnx`.
    """
    blocks = check_blocks(blocks)
    order = [("stem_conv", "conv"), ("stem_bn", "bn"), ("stem_prelu", "prelu")]

    def unit(name, act=True):
        order.extend([(f"{name}_conv", "conv"), (f"{name}_bn", "bn")])
        if act:
            order.append((f"{name}_prelu", "prelu"))

    def block(name):
        unit(f"{name}_expand")
        unit(f"{name}_dw")
        unit(f"{name}_project", act=False)

    if blocks[0] == 1:
        unit("stage1_dw")
    else:
        for b in range(1, blocks[0] + 1):
            block(f"stage1_block{b}")
    for stage in (2, 3, 4):
        block(f"stage{stage}_down")
        for b in range(1, blocks[stage - 1] + 1):
            block(f"stage{stage}_block{b}")
    unit("conv_sep")
    unit("head", act=head == "fc")
    order.extend([("embedding", "dense"), ("embedding_bn", "bn")])
    return order


def last_block_names(blocks, stage):
    """Names around the end of ``stage``: the last projection conv/BN and the stage output."""
    blocks = check_blocks(blocks)
    if stage == 1 and blocks[0] == 1:
        return {"conv": "stage1_dw_conv", "bn": "stage1_dw_bn", "add": "stage1_dw_prelu"}
    prefix = f"stage{stage}_block{blocks[stage - 1]}"
    return {"conv": f"{prefix}_project_conv", "bn": f"{prefix}_project_bn",
            "add": f"{prefix}_add"}
