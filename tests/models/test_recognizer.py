"""build_recognizer: variants, where LCD / SR / SAM sit, losses, inference cost, save/load, XLA."""
import collections

import numpy as np
import pytest

import keras
import tensorflow as tf

from occface.layers import (LCD, SAM, Cutout, DropBlock, ResponseDecorrelation,
                            WeightedChannelDropout)
from occface.losses import FilterOrthogonalityRegularizer
from occface.models import (VARIANTS, Recognizer, build_recognizer, iresnet, lcd_layer_names,
                            recognizer_config)

TINY = dict(depth=18, input_shape=(32, 32, 3), width=4, embedding_size=8)


def _producer(tensor):
    return tensor._keras_history.operation.name


def _images(rng, n=4, hw=32):
    return rng.uniform(0, 255, size=(n, hw, hw, 3)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _copy_weights(src, dst):
    """Copy every weighted layer of ``src`` into the same-named layer of ``dst``."""
    for layer in src.layers:
        if layer.weights:
            dst.get_layer(layer.name).set_weights(layer.get_weights())


def _regularized(model):
    return {l.name: l.kernel_regularizer for l in model.layers
            if getattr(l, "kernel_regularizer", None) is not None}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_maps_images_to_embeddings(variant, rng):
    model = build_recognizer(variant=variant, seed=0, **TINY)
    assert isinstance(model, Recognizer) and model.name == f"ir18_{variant}"
    assert model.input.shape == (None, 32, 32, 3) and model.output.shape == (None, 8)
    x = _images(rng)
    for training in (True, False):
        y = model(x, training=training)
        assert y.shape == (4, 8) and y.dtype == "float32"
        assert np.all(np.isfinite(_np(y)))


@pytest.mark.parametrize("depth", [34, 50, 100])
def test_depths(depth):
    model = build_recognizer(depth=depth, variant="lcd", input_shape=(32, 32, 3), width=4,
                             embedding_size=16)
    assert model.output.shape == (None, 16)
    names = lcd_layer_names(depth, 3)
    assert _producer(model.get_layer("stage3_sr_response").input) == names["point"] == \
        names["add"]
    assert list(_regularized(model)) == [names["conv"]]


def test_first_layer_rescales_and_defaults():
    model = build_recognizer(**TINY)  # default variant is the full method
    assert model.layers[1].name == "rescale"
    assert model.get_layer("rescale").scale == pytest.approx(1 / 127.5)
    assert model.get_layer("rescale").offset == -1.0
    cfg = recognizer_config(model)
    assert cfg["variant"] == "lcd" and cfg["lcd_stage"] == 3 and cfg["sam_stage"] == 4
    assert cfg["sr_reduction"] == "mean" and cfg["sr_filter_weight"] == 100.0
    assert (cfg["lcd_min_rate"], cfg["lcd_max_rate"]) == (0.0, 0.6)


NEXT_STAGE_INPUT = {2: "stage3_block1_bn1", 3: "stage4_block1_bn1", 4: "output_bn"}


@pytest.mark.parametrize("position", ["branch", "output"])
@pytest.mark.parametrize("stage,last_block", [(2, 2), (3, 2), (4, 2)])
def test_cd_sr_placement(stage, last_block, position):
    model = build_recognizer(variant="cd_sr", lcd_stage=stage, sr_filter_weight=7.0,
                             sr_response_weight=3.0, lcd_min_rate=0.1, lcd_max_rate=0.4,
                             lcd_position=position, **TINY)
    prefix = f"stage{stage}_block{last_block}"
    assert lcd_layer_names(18, stage, position) == {
        "conv": f"{prefix}_conv2", "bn": f"{prefix}_bn3", "add": f"{prefix}_add",
        "point": f"{prefix}_bn3" if position == "branch" else f"{prefix}_add"}
    sr = model.get_layer(f"stage{stage}_sr_response")
    lcd = model.get_layer(f"stage{stage}_lcd")
    assert isinstance(sr, ResponseDecorrelation) and isinstance(lcd, LCD)
    assert (sr.weight, sr.reduction) == (3.0, "mean")
    assert (lcd.min_rate, lcd.max_rate) == (0.1, 0.4)
    assert _producer(model.get_layer(f"{prefix}_bn3").input) == f"{prefix}_conv2"
    add_inputs = {_producer(t) for t in model.get_layer(f"{prefix}_add").input}
    if position == "branch":
        # bn3 (after the last 3x3 conv) -> SR response term -> LCD -> residual add
        assert _producer(sr.input) == f"{prefix}_bn3"
        assert lcd.name in add_inputs and f"{prefix}_bn3" not in add_inputs
        assert _producer(model.get_layer(NEXT_STAGE_INPUT[stage]).input) == f"{prefix}_add"
    else:
        # residual add -> SR response term -> LCD -> the next stage
        assert _producer(sr.input) == f"{prefix}_add"
        assert f"{prefix}_bn3" in add_inputs
        assert _producer(model.get_layer(NEXT_STAGE_INPUT[stage]).input) == lcd.name
    assert _producer(lcd.input) == sr.name
    # Eq. 1 only on that conv's kernel
    regs = _regularized(model)
    assert list(regs) == [f"{prefix}_conv2"]
    reg = regs[f"{prefix}_conv2"]
    assert isinstance(reg, FilterOrthogonalityRegularizer)
    assert (reg.weight, reg.reduction) == (7.0, "mean")
    assert not any(isinstance(l, SAM) for l in model.layers)


@pytest.mark.parametrize("variant,cls,layer_name", [
    ("cd", LCD, "stage3_lcd"), ("dropblock", DropBlock, "stage3_dropblock"),
    ("wcd", WeightedChannelDropout, "stage3_wcd")])
@pytest.mark.parametrize("position", ["branch", "output"])
def test_dropout_variants_sit_at_the_same_point(variant, cls, layer_name, position):
    model = build_recognizer(variant=variant, lcd_position=position, **TINY)
    layer = model.get_layer(layer_name)
    assert isinstance(layer, cls)
    if position == "branch":
        assert _producer(layer.input) == "stage3_block2_bn3"
        assert layer_name in {_producer(t) for t in model.get_layer("stage3_block2_add").input}
    else:
        assert _producer(layer.input) == "stage3_block2_add"
        assert _producer(model.get_layer("stage4_block1_bn1").input) == layer_name
    assert not _regularized(model)
    assert not any(isinstance(l, (ResponseDecorrelation, SAM)) for l in model.layers)
    others = (LCD, DropBlock, WeightedChannelDropout, Cutout)
    assert sum(isinstance(l, others) for l in model.layers) == 1


def test_cutout_is_on_the_raw_input():
    model = build_recognizer(variant="cutout", **TINY)
    cutout = model.get_layer("cutout")
    assert isinstance(cutout, Cutout) and cutout.size == 16  # default: half the side
    assert model.layers[1] is cutout
    assert _producer(model.get_layer("rescale").input) == "cutout"
    assert build_recognizer(variant="cutout", cutout_size=5, **TINY).get_layer("cutout").size == 5


@pytest.mark.parametrize("sam_stage,feeds", [(4, "output_bn"), (3, "stage4_block1_bn1"),
                                             (2, "stage3_block1_bn1")])
def test_lcd_variant_has_sam_at_stage_output(sam_stage, feeds):
    model = build_recognizer(variant="lcd", sam_stage=sam_stage, sam_reduction=2, **TINY)
    sam = model.get_layer(f"stage{sam_stage}_sam")
    assert isinstance(sam, SAM) and sam.reduction == 2
    # at stage 3 the channel dropout (default lcd_position="output") comes first, then SAM
    before = "stage3_lcd" if sam_stage == 3 else f"stage{sam_stage}_block2_add"
    assert _producer(sam.input) == before
    assert _producer(model.get_layer(feeds).input) == sam.name
    # and the CD + SR part is there too
    assert isinstance(model.get_layer("stage3_lcd"), LCD)
    assert isinstance(model.get_layer("stage3_sr_response"), ResponseDecorrelation)
    assert list(_regularized(model)) == ["stage3_block2_conv2"]


def _filter_orthogonality_mean_np(kernel):
    kh, kw, cin, cout = kernel.shape
    w = kernel.reshape(kh * kw, cin, cout)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    s = np.einsum("pki,pkj->ij", w, w)
    return np.abs(s)[~np.eye(cout, dtype=bool)].sum() / (cout * (cout - 1) * kh * kw)


def _response_decorrelation_mean_np(f):
    n, h, w, c = f.shape
    f = f.reshape(n, h * w, c)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    g = np.einsum("nki,nkj->nij", f, f) ** 2
    return np.mean([gi[~np.eye(c, dtype=bool)].sum() for gi in g]) / (c * (c - 1))


@pytest.mark.parametrize("variant,expected", [("baseline", 0), ("cd", 0), ("cd_sr", 2),
                                              ("lcd", 2), ("dropblock", 0)])
def test_model_losses(variant, expected, rng):
    model = build_recognizer(variant=variant, sr_filter_weight=100.0, sr_response_weight=2.0,
                             seed=3, **TINY)
    x = _images(rng)
    model(x, training=True)
    losses = [float(_np(l)) for l in model.losses]
    assert len(losses) == expected
    if expected:
        kernel = _np(model.get_layer("stage3_block2_conv2").kernel)
        # the response term is computed on the stage output (after the residual add,
        # training-mode BN), before the dropout
        probe = keras.Model(model.input, model.get_layer("stage3_block2_add").output)
        feats = _np(probe(x, training=True))
        want = sorted([100.0 * _filter_orthogonality_mean_np(kernel),
                       2.0 * _response_decorrelation_mean_np(feats)])
        np.testing.assert_allclose(sorted(losses), want, rtol=1e-4)
        # at inference only the weight-only Eq. 1 term remains (nothing is added by the layer)
        model(x, training=False)
        np.testing.assert_allclose([float(_np(l)) for l in model.losses],
                                   [100.0 * _filter_orthogonality_mean_np(kernel)], rtol=1e-4)


def test_sr_reduction_sum_is_passed_through():
    model = build_recognizer(variant="cd_sr", sr_reduction="sum", **TINY)
    assert model.get_layer("stage3_sr_response").reduction == "sum"
    assert _regularized(model)["stage3_block2_conv2"].reduction == "sum"


def _inference_ops(model, hw=32):
    @tf.function(autograph=False)
    def f(x):
        return model(x, training=False)

    graph = f.get_concrete_function(tf.TensorSpec((2, hw, hw, 3), tf.float32)).graph
    return collections.Counter(op.type for op in graph.get_operations())


def test_inference_is_identical_for_baseline_cd_cd_sr(rng):
    base = build_recognizer(variant="baseline", **TINY)
    x = _images(rng)
    # some training so that the BN statistics are not at their initial values
    base(x, training=True)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
    want = _np(base(x, training=False))
    want_predict = base.predict(x, verbose=0)  # compiled graph: may round differently from eager
    base_ops = _inference_ops(base)
    for variant in ("cd", "cd_sr", "dropblock", "wcd", "cutout"):
        other = build_recognizer(variant=variant, seed=1, **TINY)
        assert other.count_params() == base.count_params()
        _copy_weights(base, other)
        np.testing.assert_array_equal(_np(other(x, training=False)), want)
        if variant == "cd_sr":
            np.testing.assert_array_equal(other.predict(x, verbose=0), want_predict)
        assert _inference_ops(other) == base_ops, variant
    # in training the channel dropout is active
    cd = build_recognizer(variant="cd", lcd_min_rate=0.5, lcd_max_rate=0.5, seed=1, **TINY)
    _copy_weights(base, cd)
    assert not np.allclose(_np(cd(x, training=True)), _np(base(x, training=True)))


def test_lcd_adds_only_sam():
    width, emb = 8, 8
    kw = dict(depth=18, input_shape=(32, 32, 3), width=width, embedding_size=emb)
    base = build_recognizer(variant="cd_sr", **kw)
    full = build_recognizer(variant="lcd", sam_reduction=16, **kw)
    c, hidden, side = 8 * width, 8 * width // 16, 2   # stage 4: 64 channels at 2x2
    sam_params = (c * hidden + hidden) + (side * side * hidden * hidden + hidden) \
        + (hidden * c + c)
    assert full.count_params() - base.count_params() == sam_params
    assert sum(int(np.prod(w.shape)) for w in full.get_layer("stage4_sam").weights) == sam_params
    extra = _inference_ops(full) - _inference_ops(base)
    assert extra["Conv2D"] == 1 and extra["MatMul"] == 2 and extra["Sigmoid"] == 1
    assert not _inference_ops(base) - _inference_ops(full)


def test_lcd_drops_whole_channels_in_training(rng):
    model = build_recognizer(variant="cd", lcd_min_rate=0.5, lcd_max_rate=0.5, seed=2, **TINY)
    probe = keras.Model(model.input, model.get_layer("stage3_lcd").output)
    feats = _np(probe(_images(rng), training=True))
    dead = np.all(feats == 0, axis=(1, 2))  # (N, C)
    np.testing.assert_array_equal(dead.sum(axis=1), 8)  # round(0.5 * 16) per sample
    assert not np.any(np.all(_np(probe(_images(rng), training=False)) == 0, axis=(1, 2)))


def test_keras_round_trip(rng, tmp_path):
    model = build_recognizer(variant="lcd", dropout=0.2, seed=5, name="my_model", **TINY)
    x = _images(rng)
    for w in model.weights:  # move every weight (BN statistics, SAM, kernels) off its init
        w.assign(_np(w) + rng.uniform(0.0, 0.1, size=w.shape).astype("float32"))
    path = tmp_path / "rec.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Recognizer) and loaded.name == "my_model"
    assert recognizer_config(loaded) == recognizer_config(model)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    want = _np(model(x, training=False))
    np.testing.assert_array_equal(_np(loaded(x, training=False)), want)
    # the rebuilt model still carries the regularizers
    loaded(x, training=True)
    assert len(loaded.losses) == 2
    # rebuilding from the config gives a model of the same structure (fresh weights)
    rebuilt = build_recognizer(**recognizer_config(model))
    assert rebuilt.count_params() == model.count_params()
    assert not np.allclose(_np(rebuilt(x, training=False)), want)


def test_from_config_and_plain_iresnet_agree(rng):
    model = build_recognizer(variant="baseline", **TINY)
    clone = Recognizer.from_config(model.get_config())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    plain = iresnet(**TINY)
    assert [l.name for l in plain.layers] == [l.name for l in model.layers]
    _copy_weights(model, plain)
    x = _images(rng)
    np.testing.assert_array_equal(_np(plain(x)), _np(model(x)))


def test_recognizer_config_rejects_other_models():
    with pytest.raises(ValueError, match="Recognizer"):
        recognizer_config(iresnet(**TINY))


@pytest.mark.parametrize("variant", ["lcd"])
def test_jit_compiled_training(variant, rng):
    model = build_recognizer(variant=variant, seed=4, **TINY)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=True)
    x = _images(rng)
    y = np.ones((4, 8), "float32")
    before = _np(model.get_layer("stage3_block2_conv2").kernel).copy()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(before, _np(model.get_layer("stage3_block2_conv2").kernel))


def test_mixed_precision_gives_float32_embeddings(rng):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_recognizer(variant="lcd", **TINY)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    y = model(_images(rng), training=True)
    assert y.dtype == "float32" and np.all(np.isfinite(_np(y)))
    assert len(model.losses) == 2


@pytest.mark.parametrize("kwargs,match", [
    (dict(variant="dropout"), r"variant must be one of \('baseline', 'cd', 'cd_sr', 'lcd'"),
    (dict(depth=152), r"depth must be one of \[18, 34, 50, 100\]"),
    (dict(lcd_stage=1), r"lcd_stage must be one of \(2, 3, 4\)"),
    (dict(lcd_stage=5), r"lcd_stage must be one of \(2, 3, 4\)"),
    (dict(sam_stage=0), r"sam_stage must be one of \(1, 2, 3, 4\)"),
    (dict(lcd_max_rate=1.5), r"lcd_max_rate must be in \[0, 1\]"),
    (dict(lcd_min_rate=-0.1), r"lcd_min_rate must be in \[0, 1\]"),
    (dict(lcd_min_rate=0.7, lcd_max_rate=0.6), "lcd_min_rate must be <= lcd_max_rate"),
    (dict(lcd_max_rate="a"), "lcd_max_rate must be a number"),
    (dict(sr_reduction="avg"), r"sr_reduction must be one of \('sum', 'mean'\)"),
    (dict(sr_filter_weight=-1.0), "sr_filter_weight must be a non-negative number"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(dropblock_rate=1.0), r"dropblock_rate must be in \[0, 1\)"),
    (dict(wcd_ratio=0.0), "wcd_ratio"),
    (dict(sam_reduction=0), "sam_reduction must be a positive integer"),
    (dict(cutout_size=-2), "cutout_size"),
    (dict(width=0), "width must be a positive integer"),
    (dict(input_shape=(8, 8, 3)), "input_shape"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_recognizer(**{**TINY, **kwargs})
