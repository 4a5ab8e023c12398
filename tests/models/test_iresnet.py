"""IR-ResNet backbone: structure, parameter counts, and one block against a numpy reference."""
import numpy as np
import pytest

import keras

from occface.models import STAGE_BLOCKS, iresnet, iresnet_body, iresnet_param_count
from occface.models.iresnet import BN_EPSILON, ibasic_block


def _producer(tensor):
    """Name of the layer that produced a KerasTensor."""
    return tensor._keras_history.operation.name


def _trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def test_ir50_standard_parameter_count():
    # insightface's IR-50 (width 64, 112x112, 512-d): 43.59 M learned parameters.
    model = iresnet(50)
    assert _trainable_count(model) == iresnet_param_count(50) == 43_590_336
    assert model.count_params() == iresnet_param_count(50, trainable_only=False)
    assert model.output.shape == (None, 512)
    # the dense layer sees the 7x7x512 map of stage 4
    assert model.get_layer("embedding").kernel.shape == (7 * 7 * 512, 512)


def _hand_count(depth, hw, width, emb, c=3):
    """Learned parameters, written out independently of iresnet_param_count."""
    total = 9 * c * width + 2 * width + width
    cin = width
    for stage, n in enumerate(STAGE_BLOCKS[depth]):
        cout = width * 2 ** stage
        total += cin * cout + 2 * cout  # shortcut conv + BN of the first block
        for b in range(n):
            ci = cin if b == 0 else cout
            total += 2 * ci + 9 * ci * cout + 2 * cout + cout + 9 * cout * cout + 2 * cout
        cin = cout
        hw = -(-hw // 2)
    return total + 2 * cin + hw * hw * cin * emb + emb + emb


@pytest.mark.parametrize("depth,hw,width,emb", [(18, 32, 4, 8), (34, 40, 8, 16), (50, 64, 4, 8)])
def test_parameter_count_matches_hand_count(depth, hw, width, emb):
    model = iresnet(depth, input_shape=(hw, hw, 3), width=width, embedding_size=emb)
    expected = _hand_count(depth, hw, width, emb)
    assert _trainable_count(model) == expected == iresnet_param_count(
        depth, (hw, hw, 3), emb, width)
    assert model.count_params() == iresnet_param_count(depth, (hw, hw, 3), emb, width,
                                                       trainable_only=False)


@pytest.mark.parametrize("depth", sorted(STAGE_BLOCKS))
def test_stage_structure(depth):
    width = 4
    model = iresnet(depth, input_shape=(64, 64, 3), width=width, embedding_size=8)
    names = {layer.name for layer in model.layers}
    for stage, n_blocks in enumerate(STAGE_BLOCKS[depth], start=1):
        blocks = sorted(int(n.split("_")[1][5:]) for n in names
                        if n.startswith(f"stage{stage}_") and n.endswith("_add"))
        assert blocks == list(range(1, n_blocks + 1))
        # shortcut projection only on the first (strided) block of each stage
        assert f"stage{stage}_block1_shortcut_conv" in names
        assert not any(n.startswith(f"stage{stage}_block2_shortcut") for n in names)
        out = model.get_layer(f"stage{stage}_block{n_blocks}_add").output
        side = 64 // 2 ** stage
        assert tuple(out.shape) == (None, side, side, width * 2 ** (stage - 1))
        assert model.get_layer(f"stage{stage}_block1_conv2").strides == (2, 2)
        assert model.get_layer(f"stage{stage}_block1_conv1").strides == (1, 1)
        assert model.get_layer(f"stage{stage}_block1_shortcut_conv").strides == (2, 2)


def test_layer_order_and_settings():
    model = iresnet(18, input_shape=(32, 32, 3), width=4, embedding_size=8)
    assert model.layers[1].name == "rescale"
    rescale = model.get_layer("rescale")
    assert rescale.scale == pytest.approx(1 / 127.5) and rescale.offset == -1.0
    assert _producer(model.get_layer("stem_conv").input) == "rescale"
    chain = ["stem_conv", "stem_bn", "stem_prelu", "stage1_block1_bn1", "stage1_block1_conv1",
             "stage1_block1_bn2", "stage1_block1_prelu", "stage1_block1_pad",
             "stage1_block1_conv2", "stage1_block1_bn3"]
    for before, after in zip(chain, chain[1:]):
        assert _producer(model.get_layer(after).input) == before
    add_inputs = {_producer(t) for t in model.get_layer("stage1_block1_add").input}
    assert add_inputs == {"stage1_block1_shortcut_bn", "stage1_block1_bn3"}
    add_inputs = {_producer(t) for t in model.get_layer("stage1_block2_add").input}
    assert add_inputs == {"stage1_block1_add", "stage1_block2_bn3"}
    tail = ["stage4_block2_add", "output_bn", "output_dropout", "flatten", "embedding",
            "embedding_bn"]
    for before, after in zip(tail, tail[1:]):
        assert _producer(model.get_layer(after).input) == before
    assert model.layers[-1].name == "embedding_bn"
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias
        if isinstance(layer, keras.layers.PReLU):
            assert layer.shared_axes == [1, 2]
            np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.alpha), 0.25)
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == BN_EPSILON
    assert not model.get_layer("embedding_bn").scale
    assert model.get_layer("embedding_bn").center


def _conv_np(x, k, stride):
    """3x3 / 1x1 conv, PyTorch-style symmetric zero padding (k//2), NHWC, HWIO."""
    kh = k.shape[0]
    p = kh // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    h = (x.shape[1] + 2 * p - kh) // stride + 1
    w = (x.shape[2] + 2 * p - kh) // stride + 1
    out = np.zeros((x.shape[0], h, w, k.shape[-1]))
    for i in range(kh):
        for j in range(kh):
            patch = xp[:, i:i + stride * h:stride, j:j + stride * w:stride, :]
            out += np.einsum("nhwc,cd->nhwd", patch, k[i, j])
    return out


def _bn_np(layer, x):
    g, b, m, v = [keras.ops.convert_to_numpy(w) for w in layer.weights]
    return g * (x - m) / np.sqrt(v + layer.epsilon) + b


@pytest.mark.parametrize("stride,cin", [(2, 3), (1, 5), (1, 3)])
def test_block_matches_numpy_reference(stride, cin, rng):
    cout = 5
    inputs = keras.Input((6, 6, cin))
    outputs = ibasic_block(inputs, cout, stride, "blk")
    model = keras.Model(inputs, outputs)
    for w in model.weights:  # random BN statistics too, so inference BN is not trivial
        value = rng.normal(size=w.shape)
        if "moving_variance" in w.path:
            value = rng.uniform(0.5, 2.0, size=w.shape)
        w.assign(value.astype("float32"))
    x = rng.normal(size=(2, 6, 6, cin)).astype("float32")
    L = model.get_layer
    y = _bn_np(L("blk_bn1"), x)
    y = _conv_np(y, keras.ops.convert_to_numpy(L("blk_conv1").kernel), 1)
    y = _bn_np(L("blk_bn2"), y)
    alpha = keras.ops.convert_to_numpy(L("blk_prelu").alpha)
    y = np.where(y > 0, y, alpha * y)
    y = _conv_np(y, keras.ops.convert_to_numpy(L("blk_conv2").kernel), stride)
    y = _bn_np(L("blk_bn3"), y)
    if stride != 1 or cin != cout:
        s = _conv_np(x, keras.ops.convert_to_numpy(L("blk_shortcut_conv").kernel), stride)
        s = _bn_np(L("blk_shortcut_bn"), s)
    else:
        s = x
    got = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(got, s + y, rtol=1e-4, atol=1e-4)


def test_hooks_are_applied_at_named_points():
    seen = {}

    def hook(tag):
        def fn(t):
            seen[tag] = _producer(t)
            return keras.layers.Identity(name=f"hook_{tag}")(t)
        return fn

    inputs = keras.Input((32, 32, 3))
    out = iresnet_body(inputs, depth=34, width=4, embedding_size=8,
                       branch_hooks={(3, -1): hook("branch"), (2, 1): hook("b21")},
                       stage_hooks={4: hook("stage4"), 1: hook("stage1")},
                       kernel_regularizers={(3, -1): {"conv2": keras.regularizers.L2(1.0)}})
    model = keras.Model(inputs, out)
    assert seen == {"branch": "stage3_block6_bn3", "b21": "stage2_block1_bn3",
                    "stage4": "stage4_block3_add", "stage1": "stage1_block3_add"}
    assert _producer(model.get_layer("stage3_block6_add").input[1]) == "hook_branch"
    assert _producer(model.get_layer("output_bn").input) == "hook_stage4"
    regularized = [l.name for l in model.layers if getattr(l, "kernel_regularizer", None)]
    assert regularized == ["stage3_block6_conv2"]


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=20), r"depth must be one of \[18, 34, 50, 100\]"),
    (dict(width=0), "width must be a positive integer"),
    (dict(width=8.5), "width must be a positive integer"),
    (dict(input_shape=(8, 8, 3)), "height and width >= 16"),
    (dict(input_shape=(32, 32)), "input_shape"),
    (dict(embedding_size=0), "embedding_size"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_arguments(kwargs, match):
    base = dict(depth=18, input_shape=(32, 32, 3), width=4, embedding_size=8)
    with pytest.raises(ValueError, match=match):
        iresnet(**{**base, **kwargs})
