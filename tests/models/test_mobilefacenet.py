"""MobileFaceNet backbone, GroupedConv2D, and where the variants attach (lcd_position)."""
import keras
import numpy as np
import pytest

from occface.models import build_mobilefacenet, build_recognizer
from occface.models.mobilefacenet import GroupedConv2D, mobilefacenet_weight_order
from occface.models.recognizer import Recognizer, upgrade_config

SMALL = dict(input_shape=(32, 32, 3), blocks=(1, 1, 2, 1), scale=1, embedding_size=8)


def test_grouped_conv_matches_keras_grouped_conv(rng):
    x = rng.normal(size=(2, 9, 9, 8)).astype(np.float32)
    for stride, padding in ((1, "same"), (2, "valid")):
        ref = keras.layers.Conv2D(6, 3, strides=stride, padding=padding, groups=2,
                                  use_bias=False)
        ref.build(x.shape)
        ours = GroupedConv2D(6, 3, 2, strides=stride, padding=padding)
        ours.build(x.shape)
        ours.set_weights(ref.get_weights())  # same kernel layout (3, 3, 4, 6)
        np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)
        assert ours.compute_output_shape(x.shape) == tuple(ref(x).shape)


def test_grouped_conv_rejects_indivisible():
    with pytest.raises(ValueError, match=r"filters \(6\) must be divisible by groups \(4\)"):
        GroupedConv2D(6, 3, 4)


def test_default_layout_is_insightface_mbf():
    model = build_mobilefacenet()
    assert model.output.shape == (None, 512)
    assert model.get_layer("stage1_dw_conv").kernel.shape == (3, 3, 2, 128)   # 64 groups
    assert model.get_layer("stage4_down_expand_conv").kernel.shape == (1, 1, 256, 512)
    assert model.get_layer("head_conv").kernel.shape == (1, 1, 512, 64)
    assert model.get_layer("embedding").kernel.shape == (7 * 7 * 64, 512)
    order = mobilefacenet_weight_order()
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert {name for name, _ in order} == weighted
    # 49 convs (16 depthwise or grouped), 34 PReLU as in insightface's w600k_mbf.onnx
    assert sum(kind == "conv" for _, kind in order) == 49
    assert sum(kind == "prelu" for _, kind in order) == 34


@pytest.mark.parametrize("builder", ["iresnet", "mobilefacenet"])
def test_lcd_output_zeroes_whole_channels_stage4_receives(rng, builder):
    if builder == "iresnet":
        model = build_recognizer(depth=18, width=8, variant="cd", input_shape=(32, 32, 3),
                                 embedding_size=8, lcd_min_rate=0.5, lcd_max_rate=0.5, seed=3)
        into_stage4 = "stage4_block1_bn1"
    else:
        model = build_mobilefacenet(variant="cd", lcd_min_rate=0.5, lcd_max_rate=0.5, seed=3,
                                    **SMALL)
        into_stage4 = "stage4_down_expand_conv"
    lcd = model.get_layer("stage3_lcd")
    assert lcd.input._keras_history[0].name.endswith("_add")   # after the residual add
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    # the tensor stage 4 receives is LCD's output: half of its channels are exactly zero
    out = keras.Model(model.input, lcd.output)(x, training=True)
    out = np.asarray(out)
    zero = np.all(out == 0, axis=(1, 2))
    c = out.shape[-1]
    np.testing.assert_array_equal(zero.sum(axis=1), np.full(4, round(0.5 * c)))
    consumer = model.get_layer(into_stage4)
    assert consumer.input._keras_history[0].name == "stage3_lcd"


def test_lcd_branch_reproduces_the_old_placement():
    model = build_recognizer(depth=18, width=8, variant="cd_sr", input_shape=(32, 32, 3),
                             embedding_size=8, lcd_position="branch")
    assert model.get_layer("stage3_sr_response").input._keras_history[0].name == \
        "stage3_block2_bn3"
    add = model.get_layer("stage3_block2_add")
    assert [t._keras_history[0].name for t in add._inbound_nodes[0].input_tensors] == \
        ["stage3_block1_add", "stage3_lcd"]
    assert model.get_layer("stage3_block2_conv2").kernel_regularizer is not None


def test_old_configs_mean_branch():
    model = build_recognizer(depth=18, width=8, variant="cd", input_shape=(32, 32, 3),
                             embedding_size=8, lcd_position="branch")
    config = model.get_config()
    del config["lcd_position"]
    assert upgrade_config(config)["lcd_position"] == "branch"
    rebuilt = Recognizer.from_config(config)
    assert rebuilt.build_args["lcd_position"] == "branch"
    with pytest.raises(ValueError, match=r"lcd_position must be one of \('output', 'branch'\), "
                                         r"got 'middle'"):
        build_recognizer(depth=18, lcd_position="middle")


@pytest.mark.parametrize("variant", ["cd", "cd_sr", "dropblock", "wcd"])
def test_mbf_variants_are_the_baseline_at_inference(rng, variant):
    base = build_mobilefacenet(**SMALL)
    other = build_mobilefacenet(variant=variant, **SMALL)
    assert [v.path for v in base.weights] == [v.path for v in other.weights
                                               if "seed_generator" not in v.path]
    other.set_weights(base.get_weights() + other.get_weights()[len(base.weights):])
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(other.predict(x, verbose=0), base.predict(x, verbose=0),
                               atol=1e-5)


def test_mbf_lcd_sr_losses_and_keras_round_trip(tmp_path, rng):
    model = build_mobilefacenet(variant="lcd", seed=0, **SMALL)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    model(x, training=True)
    assert len(model.losses) == 2          # Eq. 1 on the projection conv, Eq. 2 on stage 3
    assert model.get_layer("stage3_block2_project_conv").kernel_regularizer is not None
    assert "stage4_sam" in [layer.name for layer in model.layers]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.build_args == model.build_args
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
