"""Pretrained insightface recognizers from ONNX: MobileFaceNet and IR-ResNet 18/34/50/100.

:func:`import_onnx` reads the initialisers of an ONNX file with the ``onnx`` package (no runtime),
recognises the architecture from the graph, builds the matching occface model
(:func:`~occface.models.build_mobilefacenet` or :func:`~occface.models.build_recognizer` with an
IR-ResNet) and copies the weights in. The result follows occface's conventions: float RGB faces
``(N, 112, 112, 3)`` in [0, 255], normalisation inside, un-normalised embeddings ``(N, D)``.

How the weights are mapped
--------------------------
:func:`~occface.models.onnx_graph.read_onnx_ops` reduces the graph to its weighted ops in graph
order (see :mod:`occface.models.onnx_graph`). The occface architecture lists its weighted
layers in the same forward order (``mobilefacenet_weight_order`` / ``iresnet_weight_order``),
and :func:`assign_weights` pairs the two sequences one by one, checking every shape.

Exporters often fold a BatchNorm into the convolution before it (insightface's released
``w600k_mbf`` does). A ``conv`` with a bias followed by no ``bn`` is such a fold: the Keras
convolution takes the kernel and its BatchNorm becomes ``x + bias`` (γ = 1, β = bias, mean 0,
variance 1 − ε), which computes the same function. To fine-tune such a model, keep the
BatchNorm layers in inference mode (``layer.trainable = False``): their batch statistics are
not those of the original network.

PyTorch's ``Flatten`` runs over ``(C, H, W)``; Keras's over ``(H, W, C)``: the first dense
kernel is permuted accordingly.
"""

import pathlib

import numpy as np

from occface.models.onnx_graph import SKIPPED_OPS, WeightedOp, detect_architecture, read_onnx_ops

__all__ = ["assign_weights", "import_onnx"]


def _set(layer, values, name):
    current = layer.get_weights()
    if len(current) != len(values):
        raise ValueError(f"{name}: layer {layer.name} has {len(current)} weights, got "
                         f"{len(values)}")
    for have, new in zip(current, values):
        if have.shape != new.shape:
            raise ValueError(f"{name}: layer {layer.name} expects a weight of shape {have.shape}, "
                             f"the ONNX graph has {new.shape}")
    layer.set_weights([np.asarray(v, np.float32) for v in values])


def _conv_kernel(layer, kernel, name):
    """ONNX ``(O, I/g, kh, kw)`` → Keras Conv2D ``(kh, kw, I/g, O)`` or depthwise ``(kh, kw, C, 1)``."""
    import keras
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return kernel.transpose(2, 3, 0, 1)
    return kernel.transpose(2, 3, 1, 0)


def _bn_weights(layer, bn, bias=None):
    """``[γ, β, mean, var]`` for Keras BN ``layer`` from ONNX BN ``bn``.

    ``bias`` is the bias of a conv right before it (subtracted from the mean); the variance is
    shifted so that ``sqrt(var + ε)`` is the same under the Keras layer's ε.
    """
    mean = bn.weights["mean"] if bias is None else bn.weights["mean"] - bias
    var = bn.weights["var"] + bn.attrs["epsilon"] - layer.epsilon
    return [bn.weights["scale"], bn.weights["bias"], mean, var]


def assign_weights(model, ops, order, name="model"):
    """Copy :func:`read_onnx_ops` weights into ``model`` following ``order``.

    Parameters
    ----------
    model : keras.Model
        The occface model the graph was recognised as.
    ops : list of WeightedOp
    order : list of (layer_name, kind)
        The model's weighted layers in forward order.

    Raises
    ------
    ValueError
        Naming the first layer whose ONNX counterpart is missing, of another kind or shape, and
        any ONNX weights left over.
    """
    weighted = [op for op in ops if op.kind != "add"]
    i = 0
    flat_shape = None  # (H, W, C) before the first dense, for the NCHW→NHWC row permutation
    j = 0
    while j < len(order):
        layer_name, kind = order[j]
        layer = model.get_layer(layer_name)
        if i >= len(weighted):
            raise ValueError(f"{name}: the ONNX graph ends before layer {layer_name} ({kind})")
        op = weighted[i]
        if kind == "conv":
            if op.kind != "conv":
                raise ValueError(f"{name}: layer {layer_name} is a conv, ONNX op {op.name!r} is "
                                 f"a {op.kind}")
            _set(layer, [_conv_kernel(layer, op.weights["kernel"], name)], name)
            bias = op.weights["bias"]
            i += 1
            if j + 1 < len(order) and order[j + 1][1] == "bn":
                bn_layer = model.get_layer(order[j + 1][0])
                if i < len(weighted) and weighted[i].kind == "bn" \
                        and weighted[i].input == op.output:
                    _set(bn_layer, _bn_weights(bn_layer, weighted[i], bias), name)
                    i += 1
                else:  # BN folded into the conv: BN(x) = x + bias
                    c = bn_layer.get_weights()[0].shape[0]
                    b = np.zeros(c, np.float32) if bias is None else bias
                    _set(bn_layer, [np.ones(c), b, np.zeros(c), np.full(c, 1 - bn_layer.epsilon)],
                         name)
                j += 2
                flat_shape = layer.output.shape[1:]
                continue
            if bias is not None:
                raise ValueError(f"{name}: ONNX conv {op.name!r} has a bias, layer {layer_name} "
                                 f"none and no BatchNorm follows it")
            flat_shape = layer.output.shape[1:]
        elif kind == "bn":
            if op.kind != "bn":
                raise ValueError(f"{name}: layer {layer_name} is a BatchNorm, ONNX op "
                                 f"{op.name!r} is a {op.kind}")
            scale, beta, mean, var = _bn_weights(layer, op)
            if layer.scale:
                _set(layer, [scale, beta, mean, var], name)
            else:  # no γ (occface's IR embedding BN): fold γ > 0 into the dense layer before it
                if np.any(scale <= 0):
                    raise ValueError(f"{name}: BatchNorm {op.name!r} has a non-positive scale; "
                                     f"layer {layer_name} has no scale to take it")
                dense = model.get_layer(order[j - 1][0])
                dense.set_weights([w * scale for w in dense.get_weights()])
                eps = layer.epsilon
                _set(layer, [beta, mean * scale, scale ** 2 * (var + eps) - eps], name)
            i += 1
            if len(layer.output.shape) == 4:
                flat_shape = layer.output.shape[1:]
        elif kind == "prelu":
            if op.kind != "prelu":
                raise ValueError(f"{name}: layer {layer_name} is a PReLU, ONNX op {op.name!r} "
                                 f"is a {op.kind}")
            _set(layer, [op.weights["slope"].reshape(1, 1, -1)], name)
            i += 1
        elif kind == "dense":
            if op.kind != "dense":
                raise ValueError(f"{name}: layer {layer_name} is a dense layer, ONNX op "
                                 f"{op.name!r} is a {op.kind}")
            kernel = op.weights["kernel"]
            if flat_shape is not None and kernel.shape[0] == int(np.prod(flat_shape)):
                h, w, c = flat_shape
                kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
            values = [kernel]
            if layer.use_bias:
                b = op.weights["bias"]
                values.append(np.zeros(kernel.shape[1], np.float32) if b is None else b)
            elif op.weights["bias"] is not None and np.any(op.weights["bias"]):
                raise ValueError(f"{name}: ONNX dense {op.name!r} has a bias, layer "
                                 f"{layer_name} none")
            _set(layer, values, name)
            i += 1
        j += 1
    if i != len(weighted):
        left = weighted[i]
        raise ValueError(f"{name}: {len(weighted) - i} ONNX weighted ops left over after the "
                         f"last layer, first {left.kind} {left.name!r}")


def import_onnx(path, variant="baseline", **build_args):
    """A Keras model with the weights of an insightface ONNX recognizer.

    Parameters
    ----------
    path : str or path
        ONNX file of insightface's MobileFaceNet (e.g. ``w600k_mbf.onnx``) or IR-ResNet
        18/34/50/100 (BatchNorm folded into convs or not). Its input must be RGB normalised as
        ``(x - 127.5) / 127.5`` — the convention of insightface's ArcFace models.
    variant : str
        Recognizer variant to build around the weights (``"baseline"``: the network as
        released; ``"cd"``, ``"lcd"`` …: the same weights with the variant's layers attached,
        for fine-tuning; SAM starts near the identity).
    **build_args
        Further :func:`~occface.models.build_recognizer` arguments (``lcd_stage``, ``seed`` …).

    Returns
    -------
    Recognizer
        Float RGB ``(N, 112, 112, 3)`` in [0, 255] → ``(N, D)`` un-normalised embeddings.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; a graph that is neither architecture (the message names what did not
        match).
    """
    from occface.models.iresnet import iresnet_weight_order
    from occface.models.mobilefacenet import mobilefacenet_weight_order
    from occface.models.recognizer import Recognizer
    ops = read_onnx_ops(path)
    name = pathlib.Path(path).name
    config = detect_architecture(ops, name)
    config.update(build_args)
    model = Recognizer(variant=variant, **config)
    if config["backbone"] == "mobilefacenet":
        order = mobilefacenet_weight_order(config["mbf_blocks"], config["mbf_head"])
    else:
        order = iresnet_weight_order(config["depth"])
    assign_weights(model, ops, order, name)
    return model
