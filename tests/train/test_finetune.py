"""Occlusion fine-tuning by distillation: loss, split, cache, the training loop's choices."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from occface.models import build_mobilefacenet
from occface.train.finetune import (ARMS, TRAIN_KINDS, FeatureCache, FinetuneConfig,
                                    cosine_distillation_loss, embed_features, freeze_batchnorm,
                                    split_recognizer, train_head, training_views)

SMALL = dict(input_shape=(32, 32, 3), blocks=(1, 1, 2, 1), scale=1, embedding_size=8)
SPLIT = "stage3_block2_add"


def test_cosine_distillation_loss_by_hand():
    student = tf.constant([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    teacher = tf.constant([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # cosines 1, 0, 1/sqrt(2) -> mean(1 - cos) = (0 + 1 + (1 - 0.70710678)) / 3
    want = (0.0 + 1.0 + (1.0 - 2 ** -0.5)) / 3
    np.testing.assert_allclose(float(cosine_distillation_loss(student, teacher)), want,
                               rtol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(teacher)
        loss = cosine_distillation_loss(student, teacher)
    assert tape.gradient(loss, teacher) is None  # the teacher is a constant target


def test_split_recognizer_composes_to_the_model(rng):
    model = build_mobilefacenet(variant="cd", **SMALL)
    trunk, head = split_recognizer(model, SPLIT)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(head(trunk(x)), model(x), atol=1e-5)
    assert "stage3_lcd" in [layer.name for layer in head.layers]   # LCD trains with the head
    assert "stage3_lcd" not in [layer.name for layer in trunk.layers]


def test_training_views_are_reproducible():
    paths = [f"p{i}.jpg" for i in range(20)]
    clean, occ = training_views(paths, seed=3, occluded_per_image=2)
    assert clean == [(p, "none", 0) for p in paths]
    assert [v[0] for v in occ] == [p for p in paths for _ in range(2)]
    assert {v[1] for v in occ} <= set(TRAIN_KINDS) and len({v[1] for v in occ}) > 1
    assert training_views(paths, seed=3, occluded_per_image=2)[1] == occ
    assert training_views(paths, seed=4, occluded_per_image=2)[1] != occ


def test_feature_cache_computes_once(tmp_path, rng):
    model = build_mobilefacenet(**SMALL)
    trunk, _ = split_recognizer(model, SPLIT)
    faces = {f"f{i}": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(5)}
    from occface.data import template_landmarks
    calls = []

    def load(path):
        calls.append(path)
        return faces[path], template_landmarks(32)

    cache = FeatureCache(tmp_path, trunk, "model-a", batch_size=2)
    views = [(k, "none", 0) for k in faces]
    feats = cache.features("clean", views, load)
    want = trunk(np.stack(list(faces.values())).astype(np.float32)).numpy()
    assert feats.dtype == np.float16 and feats.shape == want.shape
    np.testing.assert_allclose(feats, want, rtol=2e-3, atol=2e-3)
    n = len(calls)
    np.testing.assert_array_equal(cache.features("clean", views, load), feats)
    assert len(calls) == n                             # read back, not recomputed
    other = FeatureCache(tmp_path, trunk, "model-b").features("clean", views, load)
    assert len(calls) == 2 * n and other.shape == feats.shape   # another model: another file
    from occface.evaluation.occlusion import occlude_face
    occluded = cache.features("occ", [("f0", "upper", 0)], load)
    face, _ = occlude_face(faces["f0"], template_landmarks(32), "upper", 0, key="f0")
    assert (face != faces["f0"]).any()
    np.testing.assert_allclose(occluded[0], trunk(face[None].astype(np.float32))[0], rtol=2e-3,
                               atol=2e-3)


def _head_and_features(rng, variant="baseline", n=24):
    model = freeze_batchnorm(build_mobilefacenet(variant=variant, seed=0, **SMALL))
    trunk, head = split_recognizer(model, SPLIT)
    feats = trunk(rng.uniform(0, 255, (n, 32, 32, 3)).astype(np.float32)).numpy()
    return model, head, feats


def test_student_starts_at_the_teacher(rng):
    """Same weights, clean input, no LCD: the first step's loss is zero (up to rounding)."""
    _, head, feats = _head_and_features(rng)
    targets = embed_features(head, feats)
    cfg = FinetuneConfig(arm="clean", steps=1, batch_size=8, eval_every=1, warmup_steps=0)
    rec = train_head(head, cfg, feats, feats[:0], targets, np.zeros(0, int), lambda h: 0.0)
    assert rec["losses"][0]["loss"] < 1e-6
    # with LCD dropping channels the same start is far from the targets
    _, head_cd, _ = _head_and_features(rng, variant="cd")
    cfg = FinetuneConfig(arm="lcd", steps=1, batch_size=8, eval_every=1, warmup_steps=0,
                         lcd_min_rate=0.5, lcd_max_rate=0.5)
    rec = train_head(head_cd, cfg, feats, feats[:0], embed_features(head_cd, feats),
                     np.zeros(0, int), lambda h: 0.0)
    assert rec["losses"][0]["loss"] > 1e-3


def test_best_validation_checkpoint_is_kept(rng):
    _, head, feats = _head_and_features(rng, variant="cd")
    targets = rng.normal(size=(len(feats), 8)).astype(np.float32)
    scores = iter([0.5, 0.6, 0.9, 0.7])   # steps 0, 2, 4, 6
    snapshots = []

    def validate(h):
        snapshots.append([w.copy() for w in h.get_weights()])
        return next(scores)

    cfg = FinetuneConfig(arm="lcd_occlusion", steps=6, batch_size=4, eval_every=2,
                         learning_rate=1e-2, warmup_steps=0)
    occ_index = np.arange(len(feats))
    rec = train_head(head, cfg, feats, feats[::-1].copy(), targets, occ_index, validate)
    assert rec["best_step"] == 4 and rec["best_validation"] == 0.9
    assert [v["step"] for v in rec["validation"]] == [0, 2, 4, 6]
    for a, b in zip(snapshots[2], head.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[0], head.get_weights()))
    assert rec["images_per_second"] > 0


def test_config_errors():
    with pytest.raises(ValueError, match=r"arm must be one of \('pretrained', 'clean', "
                                         r"'occlusion', 'lcd', 'lcd_occlusion'\), got 'nope'"):
        FinetuneConfig(arm="nope")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        FinetuneConfig(steps=0)
    assert FinetuneConfig(arm="occlusion").occlusion_prob == ARMS["occlusion"][0]
    assert FinetuneConfig(arm="lcd").lcd and not FinetuneConfig(arm="occlusion").lcd


def test_mean_ci_and_verdicts():
    import importlib.util
    from occface.paths import REPO_ROOT
    spec = importlib.util.spec_from_file_location("fs", REPO_ROOT / "benchmarks" /
                                                  "finetune_study.py")
    fs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fs)
    m, h = fs.mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    assert fs.mean_ci([5.0]) == (5.0, 0.0)

    def run(arm, seed, acc):
        r = {"arm": arm, "seed": seed}
        for name, path in fs.METRICS.items():
            d = r
            for key in path[:-1]:
                d = d.setdefault(key, {})
            d[path[-1]] = acc if name == "rmfrd_accuracy" else 0.5
        return r

    runs = [run("pretrained", 0, 0.70)] + [run("lcd_occlusion", s, a)
                                           for s, a in ((0, 0.80), (1, 0.82), (2, 0.81))]
    table, comparisons = fs.summarize(runs)
    assert table["lcd_occlusion"]["rmfrd_accuracy"]["mean"] == pytest.approx(0.81)
    (row,) = comparisons
    assert (row["a"], row["b"]) == ("lcd_occlusion", "pretrained")
    assert row["rmfrd_accuracy"]["verdict"] == "a > b"
    assert row["lfw10_clean"]["verdict"] == "no significant difference"
