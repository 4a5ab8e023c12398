"""Pair protocols: occluded pairs, caches, pair lists, LFW pairs on the real data."""
import os

import numpy as np
import pytest

from occface.evaluation import (EmbeddingCache, EmbeddingModel, FaceSource, PairSet, bin_pair_set,
                                evaluate_pairs, lfw_pair_set, occlude_face, pair_occlusion,
                                read_pair_list, verification_accuracy)
from occface.data import template_landmarks


class CountingMeanColour(EmbeddingModel):
    """Embedding = mean RGB colour; counts the images it embeds."""

    def __init__(self, size=32):
        super().__init__(lambda x: x.reshape(len(x), -1, 3).mean(axis=1), (size, size))
        self.calls = 0

    def __call__(self, images):
        self.calls += len(images)
        return super().__call__(images)


def two_colour_faces(rng, n, size=32):
    """Faces whose left half is colour L and right half colour R (so 'left' occlusion -> R/2)."""
    left = rng.integers(0, 256, (n, 3))
    right = rng.integers(0, 256, (n, 3))
    img = np.empty((n, size, size, 3), np.uint8)
    img[:, :, : size // 2] = left[:, None, None]
    img[:, :, size // 2:] = right[:, None, None]
    return img, left.astype(float), right.astype(float)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_pair_occlusion_and_determinism():
    a, b = pair_occlusion(3, "one")
    assert a.tolist() == [False] * 3 and b.tolist() == [True] * 3
    a, b = pair_occlusion(2, "both")
    assert a.all() and b.all()
    with pytest.raises(ValueError):
        pair_occlusion(2, "half")
    img = np.full((112, 112, 3), 128, np.uint8)
    lm = template_landmarks(112)
    x1, m1 = occlude_face(img, lm, "block", seed=3, key="Name_0001.jpg")
    x2, m2 = occlude_face(img, lm, "block", seed=3, key="Name_0001.jpg")
    x3, m3 = occlude_face(img, lm, "block", seed=3, key="Name_0002.jpg")
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m3)  # per-image randomness
    assert m1.sum() > 0 and (x1[m1 == 1] == 0).all()
    x0, m0 = occlude_face(img, lm, "none")
    assert m0.sum() == 0 and x0 is img


def test_evaluate_pairs_clean_and_occluded_exact(rng):
    n_pairs = 40
    images, left, right = two_colour_faces(rng, 2 * n_pairs)
    issame = np.arange(n_pairs) % 2 == 0
    pairs = bin_pair_set(len(images), issame, folds=4)
    model = CountingMeanColour()
    cache = EmbeddingCache(model, FaceSource("array", size=32, images=images), batch_size=16)

    clean = evaluate_pairs(cache, pairs)
    emb = _unit((left + right) / 2)
    want = np.sum(emb[0::2] * emb[1::2], axis=1)
    ref = verification_accuracy(want, issame, folds=4)
    assert clean["accuracy"] == pytest.approx(ref.accuracy)
    assert clean["thresholds"] == pytest.approx(ref.thresholds, abs=1e-6)
    assert clean["mean_genuine_score"] == pytest.approx(want[issame].mean(), abs=1e-6)
    assert "feature_robustness" not in clean
    assert model.calls == 80

    # Left half blacked out on the second image only: its embedding becomes R / 2.
    occ = evaluate_pairs(cache, pairs, occlusion="left", occlude="one", seed=1)
    occ_emb = _unit(right[1::2])
    want = np.sum(emb[0::2] * occ_emb, axis=1)
    ref = verification_accuracy(want, issame, folds=4)
    assert occ["accuracy"] == pytest.approx(ref.accuracy)
    assert occ["occlude"] == "one" and occ["n_occluded_images"] == n_pairs
    rob = np.mean(np.sum((emb[1::2] - occ_emb) ** 2, axis=1))  # LCD Eq. 8
    assert occ["feature_robustness"] == pytest.approx(rob, rel=1e-5)
    # Only the 40 occluded images were embedded again: clean embeddings come from the cache.
    assert model.calls == 120
    both = evaluate_pairs(cache, pairs, occlusion="left", occlude="both", seed=1)
    assert model.calls == 160
    assert both["n_occluded_images"] == 80
    with pytest.raises(ValueError, match="unknown occlusion"):
        evaluate_pairs(cache, pairs, occlusion="scarf")


def test_read_pair_list(tmp_path):
    (tmp_path / "pairs.txt").write_text(
        "# a b label fold\nx/1.jpg y/2.jpg 1 0\nx/3.jpg y/4.jpg 0 1\n")
    ps = read_pair_list(tmp_path / "pairs.txt")
    assert ps.keys_a == [str(tmp_path / "x/1.jpg"), str(tmp_path / "x/3.jpg")]
    assert ps.issame.tolist() == [True, False] and ps.folds.tolist() == [0, 1]
    (tmp_path / "bad.txt").write_text("a.jpg b.jpg yes\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_pair_list(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError):
        read_pair_list(tmp_path / "none.txt")
    with pytest.raises(ValueError):
        PairSet(["a"], ["b", "c"], [True], 1)


def test_lfw_pairs_real_data(data_root, tmp_path):
    pairs = lfw_pair_set(data_root / "lfw")
    assert len(pairs) == 6000 and pairs.issame.sum() == 3000
    assert np.bincount(pairs.folds).tolist() == [600] * 10
    assert all(os.path.isfile(p) for p in pairs.keys_a[:50] + pairs.keys_b[-50:])
    assert len(pairs.unique_keys()) == 7701  # distinct images used by pairs.txt
    source = FaceSource("detect", size=112)
    img, lm, found = source.get(pairs.keys_a[0])
    assert img.shape == (112, 112, 3) and img.dtype == np.uint8 and found
    # Detected landmarks land near the template after alignment.
    assert np.abs(lm - template_landmarks(112)).max() < 8
    # Aligned faces are cached on disk: a second source re-reads them without detecting.
    keys = pairs.keys_a[:3]
    first = FaceSource("detect", size=112, cache_dir=tmp_path)
    first.preload(keys)
    second = FaceSource("detect", size=112, cache_dir=tmp_path)
    second._load = None  # any detection attempt would fail
    second.preload(keys)
    np.testing.assert_array_equal(second.get(keys[2])[0], first.get(keys[2])[0])
    assert second.stats["loaded"] == 3
