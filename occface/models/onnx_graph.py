"""The weighted ops of an insightface ONNX recognizer, and which occface architecture it is.

:func:`read_onnx_ops` reads an ONNX file with the ``onnx`` package (no runtime);
:func:`detect_architecture` recognises MobileFaceNet or IR-ResNet 18/34/50/100 from those ops.
:func:`occface.models.onnx_import.import_onnx` builds the matching model and copies the weights.

How the graph is read
---------------------
The ONNX nodes are reduced to a sequence of *weighted ops* in graph order — ``conv`` (kernel,
bias, groups, strides, pads), ``bn``, ``prelu``, ``dense`` (``Gemm`` / ``MatMul``) — plus ``add``
markers; ``Flatten``, ``Reshape``, ``Identity`` and ``Dropout`` carry no weights and are skipped.
Any other op is refused by name. Initialisers and ``Constant`` nodes both hold weights; a
``MatMul`` followed by an ``Add`` of a constant is one dense layer with a bias.
"""

import dataclasses
import pathlib

SKIPPED_OPS = ("Flatten", "Reshape", "Identity", "Dropout")


@dataclasses.dataclass
class WeightedOp:
    """One weighted ONNX op (or an ``add`` marker) in graph order."""
    kind: str
    name: str
    weights: dict
    attrs: dict
    input: str = ""
    output: str = ""


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_onnx_ops(path):
    """The weighted ops of an ONNX graph in node order.

    Parameters
    ----------
    path : str or path
        ``.onnx`` file.

    Returns
    -------
    list of WeightedOp
        ``kind`` in ``conv`` (``weights``: ``kernel`` (O, I/g, kh, kw), ``bias`` or None;
        ``attrs``: ``group``, ``strides``, ``pads``), ``bn`` (``scale``, ``bias``, ``mean``,
        ``var``; ``attrs``: ``epsilon``), ``prelu`` (``slope`` (C,)), ``dense`` (``kernel``
        (in, out), ``bias`` or None) and ``add``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an ONNX model, or an op that no supported architecture has (named).
    """
    import onnx
    from onnx import numpy_helper
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and others for non-ONNX bytes
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # Constant nodes hold weights too (some exporters)
        if node.op_type == "Constant":
            inits[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
    ops = []
    pending_matmul = None
    for node in graph.node:
        t, a = node.op_type, _attrs(node)
        w = [inits.get(i) for i in node.input]
        n_before = len(ops)
        if t == "Constant" or t in SKIPPED_OPS:
            continue
        if t == "Conv":
            kernel = w[1]
            if kernel is None or kernel.ndim != 4:
                raise ValueError(f"{path}: Conv {node.name!r} has no constant 4-D kernel")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ValueError(f"{path}: Conv {node.name!r} is dilated, no supported "
                                 f"architecture is")
            ops.append(WeightedOp("conv", node.name,
                                  {"kernel": kernel, "bias": w[2] if len(w) > 2 else None},
                                  {"group": int(a.get("group", 1)),
                                   "strides": tuple(a.get("strides", (1, 1))),
                                   "pads": tuple(a.get("pads", (0, 0, 0, 0)))}))
        elif t == "BatchNormalization":
            ops.append(WeightedOp("bn", node.name, dict(zip(("scale", "bias", "mean", "var"),
                                                            w[1:5])),
                                  {"epsilon": float(a.get("epsilon", 1e-5))}))
        elif t == "PRelu":
            if w[1] is None:
                raise ValueError(f"{path}: PRelu {node.name!r} has no constant slope")
            ops.append(WeightedOp("prelu", node.name, {"slope": w[1].reshape(-1)}, {}))
        elif t == "Gemm":
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                raise ValueError(f"{path}: Gemm {node.name!r} with alpha/beta/transA is not a "
                                 f"plain dense layer")
            kernel = w[1].T if a.get("transB", 0) else w[1]
            ops.append(WeightedOp("dense", node.name,
                                  {"kernel": kernel, "bias": w[2] if len(w) > 2 else None}, {}))
        elif t == "MatMul" and w[1] is not None:
            pending_matmul = WeightedOp("dense", node.name, {"kernel": w[1], "bias": None}, {})
            ops.append(pending_matmul)
        elif t == "Add":
            const = [x for x in w if x is not None]
            if const and pending_matmul is not None and ops[-1] is pending_matmul:
                pending_matmul.weights["bias"] = const[0].reshape(-1)
            elif const:
                raise ValueError(f"{path}: Add {node.name!r} with a constant operand is not part "
                                 f"of a supported architecture")
            else:
                ops.append(WeightedOp("add", node.name, {}, {}))
            pending_matmul = None
        else:
            raise ValueError(f"{path}: op {t} ({node.name!r}) is not part of a supported "
                             f"architecture (MobileFaceNet, IR-ResNet 18/34/50/100)")
        if len(ops) > n_before:
            ops[-1].input, ops[-1].output = node.input[0], node.output[0]
        elif t == "Add" and pending_matmul is None and ops and ops[-1].kind == "dense":
            ops[-1].output = node.output[0]  # MatMul + bias Add: the dense output moves on
    # tensors that only pass through weightless ops keep their producer's name
    alias = {}
    for node in graph.node:
        if node.op_type in SKIPPED_OPS and node.input:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
    for op in ops:
        op.input = alias.get(op.input, op.input)
    return ops


def _stage_adds(ops, is_boundary):
    """Number of ``add`` markers between consecutive boundary convs (stage segments)."""
    counts, current = [], None
    for op in ops:
        if op.kind == "conv" and is_boundary(op):
            if current is not None:
                counts.append(current)
            current = 0
        elif op.kind == "add" and current is not None:
            current += 1
    if current is not None:
        counts.append(current)
    return counts


def detect_architecture(ops, name="model"):
    """Recognise the architecture of :func:`read_onnx_ops` output.

    Returns
    -------
    dict
        :class:`~occface.models.Recognizer` build arguments (``backbone``, ``depth``/``width``
        or ``mbf_blocks``/``mbf_scale``/``mbf_head``, ``embedding_size``, ``input_shape``).

    Raises
    ------
    ValueError
        Naming the first property that matches neither architecture.
    """
    from occface.models.iresnet import STAGE_BLOCKS
    convs = [op for op in ops if op.kind == "conv"]
    dense = [op for op in ops if op.kind == "dense"]
    if not convs or len(dense) != 1:
        raise ValueError(f"{name}: expected convolutions and exactly one dense (Gemm) layer, "
                         f"found {len(convs)} Conv and {len(dense)} Gemm/MatMul")
    stem = convs[0]
    k = stem.weights["kernel"]
    if k.shape[1] != 3 or k.shape[2:] != (3, 3):
        raise ValueError(f"{name}: the first Conv is {k.shape[0]}x{k.shape[1]}x{k.shape[2]}x"
                         f"{k.shape[3]}, expected a 3x3 conv on 3 (RGB) channels")
    embedding_size = int(dense[0].weights["kernel"].shape[1])
    grouped = [op for op in convs if op.attrs["group"] > 1]
    if grouped:  # MobileFaceNet
        if stem.attrs["strides"] != (2, 2):
            raise ValueError(f"{name}: has grouped convolutions (MobileFaceNet?) but its stem "
                             f"conv has strides {stem.attrs['strides']}, expected 2")
        c = int(k.shape[0])
        if c % 64:
            raise ValueError(f"{name}: MobileFaceNet stem must have 64·scale channels, has {c}")
        second = convs[1]
        first_block = 1 if (second.attrs["group"] > 1 and second.weights["kernel"].shape[2:]
                            == (3, 3)) else None
        boundaries = _stage_adds(ops, lambda op: op.attrs["group"] > 1
                                 and op.attrs["strides"] == (2, 2))
        if len(boundaries) != 3:
            raise ValueError(f"{name}: MobileFaceNet has 3 strided depthwise convs (stages 2-4), "
                             f"found {len(boundaries)}")
        if first_block is None:  # stage-1 residual blocks: adds before the first boundary
            first = 0
            for op in ops:
                if op.kind == "conv" and op.attrs["group"] > 1 and op.attrs["strides"] == (2, 2):
                    break
                first += op.kind == "add"
            first_block = first
        last_conv = convs[-1]
        kh = last_conv.weights["kernel"].shape[2]
        if last_conv.attrs["group"] > 1 and kh > 1:
            head = "gdc"
        elif last_conv.weights["kernel"].shape[0] == 64 and kh == 1:
            head = "fc"
        else:
            raise ValueError(f"{name}: unknown MobileFaceNet head (last conv "
                             f"{last_conv.weights['kernel'].shape}); expected GDC or 1x1-to-64")
        in_features = dense[0].weights["kernel"].shape[0]
        spatial = (int(round((in_features / 64) ** 0.5)) if head == "fc"
                   else int(last_conv.weights["kernel"].shape[2]))
        return {"backbone": "mobilefacenet", "mbf_blocks": [first_block] + boundaries,
                "mbf_scale": c // 64, "mbf_head": head, "embedding_size": embedding_size,
                "input_shape": [spatial * 16, spatial * 16, 3]}
    # IR-ResNet
    if stem.attrs["strides"] != (1, 1):
        raise ValueError(f"{name}: IR-ResNet stem conv has stride 1, this graph's has "
                         f"{stem.attrs['strides']} (and no grouped conv, so not MobileFaceNet)")
    width = int(k.shape[0])
    # a stage starts at the strided 3x3 conv of its first block; its 1x1 shortcut is strided too
    blocks = _stage_adds(ops, lambda op: op.attrs["strides"] == (2, 2)
                         and op.weights["kernel"].shape[2] == 3)
    depth = next((d for d, b in STAGE_BLOCKS.items() if tuple(b) == tuple(blocks)), None)
    if depth is None:
        raise ValueError(f"{name}: residual blocks per stage {blocks} match no IR-ResNet depth "
                         f"({', '.join(f'{d}: {b}' for d, b in STAGE_BLOCKS.items())})")
    in_features = dense[0].weights["kernel"].shape[0]
    side = int(round((in_features / (8 * width)) ** 0.5))
    if side * side * 8 * width != in_features:
        raise ValueError(f"{name}: dense layer takes {in_features} features, not a square map of "
                         f"{8 * width} channels")
    return {"backbone": "iresnet", "depth": depth, "width": width,
            "embedding_size": embedding_size, "input_shape": [side * 16, side * 16, 3]}

