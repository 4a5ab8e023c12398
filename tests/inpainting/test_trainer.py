"""ID-GAN training loop: config, data plumbing, a tiny run with exact resume, the NaN guard."""
import json
import pathlib
import shutil

import cv2
import numpy as np
import pytest

import keras
import tensorflow as tf

from occface.inpainting import build_face_parser
from occface.inpainting.trainer import (IDGANConfig, add_hole_masks, load_faces_with_landmarks,
                                        load_recognizer, prepare_parser, preview_grid,
                                        train_idgan, training_data)
from occface.train import NonFiniteLossError
from occface.train.distribute import make_strategy

S = 32


def tiny_config(tmp_path, name="run", **overrides):
    settings = dict(image_size=S, gen_width=4, dilation_rates=(2,), critic_width=4,
                    critic_max_width=8, parser_width=4, batch_size=4, steps=4, warmup_steps=2,
                    model_dir=str(tmp_path / name), checkpoint_interval=2, summary_interval=2,
                    image_interval=2, preview_images=2, keep_checkpoints=3, seed=3,
                    critic_norm="none")
    settings.update(overrides)
    return IDGANConfig(**settings)


def synthetic_stream(config, n=12, classes=3, nan=False):
    rng = np.random.default_rng(7)
    labels = np.arange(n) % classes
    base = rng.uniform(40, 215, (classes, S, S, 3))
    images = np.clip(base[labels] + rng.normal(0, 20, (n, S, S, 3)), 0, 255).astype(np.float32)
    if nan:
        images[:] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    ds = ds.repeat().batch(config.batch_size, drop_remainder=True)
    return add_hole_masks(ds, config, seed=5)


def toy_recognizer():
    """A small functional recognizer with IR-ResNet layer names (stage-2 low features)."""
    keras.utils.set_random_seed(11)
    image = keras.Input((S, S, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(image)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="stem_conv")(x)
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stage2_block1_conv")(x)
    x = keras.layers.Add(name="stage2_block1_add")([x, y])
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stage3_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(image, keras.layers.Dense(8, name="embedding")(x), name="toy")


def test_config_parsing_and_validation(tmp_path):
    cfg = IDGANConfig(hole_kinds="block, sunglasses", train_folds="0 1", dilation_rates="2,4")
    assert cfg.hole_kinds == ("block", "sunglasses") and cfg.train_folds == (0, 1)
    assert cfg.dilation_rates == (2, 4) and cfg.patch_size == 64
    assert IDGANConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ID-GAN training settings: bogus"):
        IDGANConfig.from_dict({"bogus": 1})
    for bad, match in [(dict(image_size=30), "image_size"), (dict(hole_kinds=("x",)), "hole_kinds"),
                       (dict(loss_reduction="max"), "loss_reduction"),
                       (dict(warmup_steps=5, steps=2), "warmup_steps"),
                       (dict(critic_steps=0), "critic_steps"),
                       (dict(adv_global_weight=-1.0), "adv_global_weight"),
                       (dict(train_folds=(0,)), "lfw_pairs")]:
        with pytest.raises(ValueError, match=match):
            IDGANConfig(**bad).validate()
    with pytest.raises(ValueError, match="model_dir"):
        train_idgan(IDGANConfig(image_size=S))


def test_hole_masks_are_reproducible_blocks():
    cfg = IDGANConfig(image_size=S, batch_size=4, hole_size=12)
    ds = synthetic_stream(cfg)
    first = [tuple(t.numpy() for t in e) for e in ds.take(2)]
    again = [tuple(t.numpy() for t in e) for e in ds.take(2)]
    for (img, lab, m), (img2, lab2, m2) in zip(first, again):
        np.testing.assert_array_equal(m, m2)
        assert img.shape == (4, S, S, 3) and lab.dtype == np.int32 and m.shape == (4, S, S, 1)
        for mask in m[..., 0]:
            ys, xs = np.nonzero(mask)
            assert mask.sum() == 144 and np.ptp(ys) == 11 and np.ptp(xs) == 11  # one 12x12 block
    assert not np.array_equal(first[0][2], first[1][2])  # fresh holes per batch


def test_preview_grid():
    from occface.inpainting import build_generator
    gen = build_generator(S, width=4)
    truth = np.full((2, S, S, 3), 100.0, np.float32)
    masks = np.zeros((2, S, S, 1), np.float32)
    masks[:, 4:10, 4:10] = 1
    grid = preview_grid(gen, truth, masks)
    assert grid.shape == (2 * S, 4 * S, 3) and grid.dtype == np.uint8
    assert np.all(grid[4:10, 4:10] == 255) and np.all(grid[0:4, 0:4] == 100)  # input: white hole
    assert np.all(grid[4:10, S + 4:S + 10] == 255) and np.all(grid[0:4, S:S + 4] == 0)  # mask
    assert np.all(grid[:, 3 * S:] == 100)  # truth


def _checkpoint_state(model_dir, number):
    reader = tf.train.load_checkpoint(str(pathlib.Path(model_dir) / "checkpoints" /
                                          f"ckpt-{number}"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if not k.startswith("iterator") and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_tiny_run_all_terms_and_exact_resume(tmp_path):
    cfg = tiny_config(tmp_path)
    recognizer = toy_recognizer()
    parser = build_face_parser(S, width=4)
    result = train_idgan(cfg, dataset=synthetic_stream(cfg), num_classes=3,
                         recognizer=recognizer, parser=parser)
    assert result["step"] == 4 and result["identity"] and result["structure"]
    warm, adv = result["history"][0], result["history"][1]
    assert set(warm) >= {"loss_g", "reconstruction"} and "loss_d" not in warm
    for key in ("reconstruction", "adv_global", "adv_local", "structure", "instance", "diversity",
                "loss_d", "wasserstein_global", "wasserstein_local", "gp_global", "gp_local"):
        assert np.isfinite(adv[key]), key
    assert adv["structure"] > 0 and adv["instance"] > 0 and adv["gp_global"] > 0
    model_dir = pathlib.Path(cfg.model_dir)
    generator = keras.saving.load_model(model_dir / "generator.keras")
    assert generator.output_shape == (None, S, S, 3)
    assert json.loads((model_dir / "config.json").read_text())["num_classes"] == 3
    assert (model_dir / "training.json").is_file()
    events = list((model_dir / "train").glob("events.out.tfevents.*"))
    assert events
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0]))
            for v in e.summary.value}
    assert {"input_mask_output_truth", "loss_g", "wasserstein_global"} <= tags
    state = _checkpoint_state(model_dir, 4)
    assert any("centroids" in k for k in state)

    # Resume a copy from its step-2 checkpoint: steps 3-4 must reproduce the first run exactly.
    copy = tmp_path / "resumed"
    shutil.copytree(model_dir, copy)
    ckpt_dir = copy / "checkpoints"
    for f in ckpt_dir.glob("ckpt-4*"):
        f.unlink()
    (ckpt_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n'
                                         'all_model_checkpoint_paths: "ckpt-2"\n')
    cfg2 = tiny_config(tmp_path, name="resumed")
    again = train_idgan(cfg2, dataset=synthetic_stream(cfg2), num_classes=3,
                        recognizer=recognizer, parser=parser)
    assert again["restored_from"].endswith("ckpt-2") and again["step"] == 4
    resumed = _checkpoint_state(copy, 4)
    assert resumed.keys() == state.keys()
    for key in state:
        np.testing.assert_allclose(resumed[key], state[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_nonfinite_guard_stops_the_run(tmp_path):
    cfg = tiny_config(tmp_path, steps=5, warmup_steps=5, max_nonfinite_steps=2,
                      structure_weight=0.0, image_interval=0)
    with pytest.raises(NonFiniteLossError, match="2 consecutive"):
        train_idgan(cfg, dataset=synthetic_stream(cfg, nan=True), num_classes=3)
    assert not (pathlib.Path(cfg.model_dir) / "checkpoints").exists() or not list(
        (pathlib.Path(cfg.model_dir) / "checkpoints").glob("ckpt-*.index"))


def _write_tree(root, identities=("alice", "bob"), per=3, size=40, records=True):
    from occface.data.alignment import template_landmarks
    rng = np.random.default_rng(0)
    rows = []
    pts = template_landmarks(size)
    for label, name in enumerate(identities):
        (root / name).mkdir(parents=True)
        for i in range(per):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            cv2.imwrite(str(root / name / f"{i}.png"), img)
            coords = ",".join(f"{v:.3f}" for v in (pts + i).reshape(-1))
            rows.append(f"{name}/{i}.png,{label},{1 if i < 2 else 0},{coords}")
    if records:
        header = "file,label,found," + ",".join(f"{a}{k}" for k in range(5) for a in "xy")
        (root / "records.csv").write_text(header + "\n" + "\n".join(rows) + "\n")


def test_load_faces_with_landmarks(tmp_path):
    from occface.data.alignment import template_landmarks
    _write_tree(tmp_path / "tree")
    images, landmarks = load_faces_with_landmarks(tmp_path / "tree", 20, identities={"bob"})
    assert images.shape == (2, 20, 20, 3) and images.dtype == np.uint8  # found == 1 only
    np.testing.assert_allclose(landmarks[1], (template_landmarks(40) + 1) * 0.5, atol=1e-3)
    _write_tree(tmp_path / "plain", records=False)
    images, landmarks = load_faces_with_landmarks(tmp_path / "plain", 40, max_images=4)
    assert images.shape == (4, 40, 40, 3)
    np.testing.assert_allclose(landmarks[0], template_landmarks(40), atol=1e-4)
    with pytest.raises(FileNotFoundError):
        load_faces_with_landmarks(tmp_path / "missing", 20)


def test_prepare_parser_trains_saves_and_reloads(tmp_path):
    _write_tree(tmp_path / "tree", size=S)
    cfg = tiny_config(tmp_path, data_dir=str(tmp_path / "tree"), parser_epochs=1)
    parser = prepare_parser(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "parser.keras").is_file() and not parser.trainable
    again = prepare_parser(cfg, tmp_path / "run")
    x = np.zeros((1, S, S, 3), np.float32)
    np.testing.assert_allclose(again(x).numpy(), parser(x).numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="face parser"):
        prepare_parser(tiny_config(tmp_path, parser_path=str(tmp_path / "nope.keras")), tmp_path)


def test_training_data_from_a_folder_tree(tmp_path):
    _write_tree(tmp_path / "tree", per=4, size=S)
    cfg = tiny_config(tmp_path, data_dir=str(tmp_path / "tree"), hole_size=8)
    dataset, num_classes = training_data(cfg, 4, seed=0)
    truth, labels, masks = next(iter(dataset))
    assert num_classes == 2 and truth.shape == (4, S, S, 3) and masks.shape == (4, S, S, 1)
    assert set(np.unique(labels.numpy())) <= {0, 1}
    np.testing.assert_array_equal(masks.numpy().sum(axis=(1, 2, 3)), [64] * 4)


def test_load_recognizer(tmp_path):
    model = toy_recognizer()
    model.save(tmp_path / "rec.keras")
    (tmp_path / "dir").mkdir()
    model.save(tmp_path / "dir" / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, S, S, 3)).astype(np.float32)
    for path in (tmp_path / "rec.keras", tmp_path / "dir"):
        loaded = load_recognizer(path)
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(FileNotFoundError):
        load_recognizer(tmp_path / "missing.keras")
    (tmp_path / "weights.h5").write_text("x")
    with pytest.raises(ValueError, match=".keras"):
        load_recognizer(tmp_path / "weights.h5")


@pytest.mark.parametrize("finite", [True, False])
def test_apply_gradients_if_finite_uses_each_replicas_gradients(finite):
    """Two replicas with different data: the update must be the global-batch gradient."""
    from occface.inpainting.trainer import apply_gradients_if_finite
    from occface.train import ShardedInput
    x = np.arange(8, dtype=np.float32).reshape(8, 1)
    results = []
    for strategy in (tf.distribute.get_strategy(),
                     make_strategy("mirrored", ["/cpu:0", "/cpu:1"])):
        with strategy.scope():
            w = tf.Variable([[1.0]])
            opt = keras.optimizers.SGD(0.1)
            opt.build([w])
        inputs = ShardedInput(strategy, tf.data.Dataset.from_tensors(x).repeat())

        def replica(batch):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(batch @ w) / 8.0
            apply_gradients_if_finite(tf.constant(finite), opt, tape.gradient(loss, [w]), [w])
            return loss

        tf.function(lambda: strategy.run(replica, args=(inputs.next(),)), autograph=False)()
        results.append((float(w.numpy()[0, 0]), int(opt.iterations.numpy())))
    expected = (1.0 - 0.1 * x.sum() / 8.0, 1) if finite else (1.0, 0)
    for value, iterations in results:
        assert np.isclose(value, expected[0]) and iterations == expected[1]


def test_init_generator_starts_from_given_weights(tmp_path):
    from occface.inpainting import build_generator
    keras.utils.set_random_seed(123)
    source = build_generator(S, width=4, dilation_rates=(2,))
    source.save(tmp_path / "warm.keras")
    cfg = tiny_config(tmp_path, steps=1, warmup_steps=1, structure_weight=0.0, image_interval=0,
                      init_generator=str(tmp_path / "warm.keras"))
    train_idgan(cfg, dataset=synthetic_stream(cfg), num_classes=3)
    trained = keras.saving.load_model(tmp_path / "run" / "generator.keras")
    for a, b in zip(trained.get_weights(), source.get_weights()):
        np.testing.assert_allclose(a, b, atol=1.5e-4)  # one Adam step of 1e-4 away
    bad = tiny_config(tmp_path, name="bad", steps=1, warmup_steps=1, structure_weight=0.0,
                      gen_width=8, init_generator=str(tmp_path / "warm.keras"))
    with pytest.raises(ValueError, match="another architecture"):
        train_idgan(bad, dataset=synthetic_stream(bad), num_classes=3)


def _spy(monkeypatch, module, name):
    """Wrap ``module.name`` so its calls are recorded (keyword arguments), results unchanged."""
    calls = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_training_step_losses_are_the_named_objectives(tmp_path, monkeypatch):
    """The reported L_G is generator_objective (Eq. 6) of the reported terms, L_D the Wasserstein
    critic losses plus the penalties, and the step computes them with those named functions."""
    import occface.inpainting.step as step_module
    from occface.inpainting import generator_objective
    calls = {name: _spy(monkeypatch, step_module, name)
             for name in ("generator_objective", "generator_adversarial_loss",
                          "critic_wasserstein_loss", "gradient_penalty")}
    weights = dict(adv_global_weight=20.0, adv_local_weight=30.0, structure_weight=0.5,
                   identity_weight=0.25)
    cfg = tiny_config(tmp_path, steps=3, warmup_steps=1, checkpoint_interval=0, image_interval=0,
                      **weights)
    values = []
    train_idgan(cfg, dataset=synthetic_stream(cfg), num_classes=3, recognizer=toy_recognizer(),
                parser=build_face_parser(S, width=4),
                progress=lambda step, total, v: values.append(dict(v)))
    assert len(values) == 3
    warm, adversarial = values[0], values[1:]
    np.testing.assert_allclose(warm["loss_g"], warm["reconstruction"], rtol=1e-6)
    term_names = ("reconstruction", "adv_global", "adv_local", "structure", "instance",
                  "diversity")
    for v in adversarial:
        assert all(np.isfinite(list(v.values()))) and v["structure"] > 0 and v["instance"] > 0
        expected = generator_objective(*(v[k] for k in term_names), **weights)
        np.testing.assert_allclose(v["loss_g"], float(expected), rtol=1e-6, atol=1e-5)
        # critic_wasserstein_loss = D(fake) − D(real) = −(reported Wasserstein estimate)
        critic = (-v["wasserstein_global"] + v["gp_global"]) + (-v["wasserstein_local"]
                                                                + v["gp_local"])
        np.testing.assert_allclose(v["loss_d"], critic, rtol=1e-6, atol=1e-5)
    # traced once per step kind: warm-up + adversarial generator objectives, both critics each
    assert len(calls["generator_objective"]) == 2
    for kwargs in calls["generator_objective"]:
        assert {k: kwargs[k] for k in weights} == weights
    assert len(calls["generator_adversarial_loss"]) == 2
    assert len(calls["critic_wasserstein_loss"]) == 2
    assert len(calls["gradient_penalty"]) == 2
