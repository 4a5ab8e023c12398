"""Test helper: write an occface baseline recognizer as an insightface-style ONNX graph.

The graph takes normalised NCHW input (as insightface's exports do) and lists its nodes in the
order PyTorch executes them (a block's residual branch before its shortcut): a post-order walk
from the output that visits an ``Add``'s inputs last-first. ``fold_bn=True`` folds each BN that
follows a convolution into it, as ``torch.onnx.export`` does in eval mode.
"""

import keras
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from occface.models.mobilefacenet import GroupedConv2D

IDENTITY_LAYERS = ("Dropout", "LCD", "DropBlock", "WeightedChannelDropout",
                   "ResponseDecorrelation", "InputLayer")


def _inbound(layer):
    node = layer._inbound_nodes[0]
    return [t._keras_history[0] for t in node.input_tensors]


def _post_order(model):
    seen, order = set(), []

    def visit(layer):
        if layer.name in seen:
            return
        seen.add(layer.name)
        if layer._inbound_nodes and not isinstance(layer, keras.layers.InputLayer):
            for parent in reversed(_inbound(layer)):
                visit(parent)
        order.append(layer)

    visit(model.layers[-1])
    return order


def write_onnx(model, path, fold_bn=False, opset=13):
    """Write ``model`` (an occface ``baseline`` Recognizer) to ``path``; returns the input name."""
    inits, nodes, tensor = [], [], {}
    consumers = {}
    layers = _post_order(model)
    for layer in layers:
        if layer._inbound_nodes and not isinstance(layer, keras.layers.InputLayer):
            for p in _inbound(layer):
                consumers.setdefault(p.name, []).append(layer)

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    folded = set()
    flat_hw = None
    for layer in layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.InputLayer):
            tensor[layer.name] = "input"
            continue
        src = [tensor[p.name] for p in _inbound(layer)]
        out = layer.name
        if kind == "Rescaling" or kind in IDENTITY_LAYERS or layer.name in folded:
            tensor[layer.name] = src[0]
            continue
        if kind == "ZeroPadding2D":  # merged into the conv that follows
            tensor[layer.name] = src[0]
            continue
        if kind in ("Conv2D", "DepthwiseConv2D", "GroupedConv2D"):
            w = layer.get_weights()[0]
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                kernel, group = w.transpose(2, 3, 0, 1), w.shape[2]
            else:
                kernel = w.transpose(3, 2, 0, 1)
                group = layer.groups if isinstance(layer, GroupedConv2D) else 1
            bias = None
            nxt = consumers.get(layer.name, [])
            if fold_bn and len(nxt) == 1 and isinstance(nxt[0], keras.layers.BatchNormalization):
                gamma, beta, mean, var = nxt[0].get_weights()
                f = gamma / np.sqrt(var + nxt[0].epsilon)
                kernel = kernel * f[:, None, None, None]
                bias = beta - mean * f
                folded.add(nxt[0].name)
            k = kernel.shape[2]
            parent = _inbound(layer)[0]
            if layer.padding == "same":
                p = (k - 1) // 2
            else:
                p = parent.padding[0][0] if isinstance(parent, keras.layers.ZeroPadding2D) else 0
            strides = layer.strides if not isinstance(layer.strides, int) \
                else (layer.strides, layer.strides)
            inputs = [src[0], const(f"{out}.w", kernel)] + \
                ([const(f"{out}.b", bias)] if bias is not None else [])
            nodes.append(helper.make_node("Conv", inputs, [out], name=out, group=int(group),
                                          kernel_shape=[k, k], strides=list(strides),
                                          pads=[p] * 4, dilations=[1, 1]))
        elif kind == "BatchNormalization":
            ws = layer.get_weights()
            if not layer.scale:
                ws = [np.ones_like(ws[0])] + ws
            gamma, beta, mean, var = ws
            names = [const(f"{out}.{n}", v) for n, v in
                     zip(("scale", "bias", "mean", "var"), (gamma, beta, mean, var))]
            nodes.append(helper.make_node("BatchNormalization", [src[0]] + names, [out],
                                          name=out, epsilon=float(layer.epsilon)))
        elif kind == "PReLU":
            slope = layer.get_weights()[0].reshape(-1, 1, 1)
            nodes.append(helper.make_node("PRelu", [src[0], const(f"{out}.slope", slope)],
                                          [out], name=out))
        elif kind == "Add":
            nodes.append(helper.make_node("Add", src, [out], name=out))
        elif kind == "Flatten":
            flat_hw = layer.input.shape[1:]
            nodes.append(helper.make_node("Flatten", src, [out], name=out, axis=1))
        elif kind == "Dense":
            ws = layer.get_weights()
            kernel = ws[0]
            h, w, c = flat_hw
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            bias = ws[1] if len(ws) > 1 else np.zeros(kernel.shape[1], np.float32)
            nodes.append(helper.make_node("Gemm", [src[0], const(f"{out}.w", kernel.T),
                                                   const(f"{out}.b", bias)], [out], name=out,
                                          transB=1))
        else:
            raise ValueError(f"onnx_writer: no ONNX form for layer {layer.name} ({kind})")
        tensor[layer.name] = out
    h, w, _ = model.input_shape[1:]
    graph = helper.make_graph(
        nodes, "occface", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         [None, 3, h, w])],
        [helper.make_tensor_value_info(tensor[layers[-1].name], TensorProto.FLOAT,
                                       [None, model.output_shape[-1]])],
        initializer=inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    return "input"
