"""IJB-C 1:1 on a miniature release written by the test: file parsing, landmark alignment,
media-then-template pooling, faceness weighting, pair scoring, occluded subset."""
import numpy as np
import pytest

from occface.data import template_landmarks
from occface.evaluation import (evaluate_ijbc_features, ijbc_image_features,
                                occluded_subset, read_ijbc, read_image_list, score_index_pairs,
                                score_template_pairs, template_features)

S15 = 1 / np.sqrt(1.5)
# Expected pair scores. T1 = mean of media 10 (R, G -> (.5, .5, 0)) + media 11 (0, 0, 1);
# T2 = B; T3 = R; T4 = G; T5 = (1, 1, 0) / sqrt 2.
EXPECTED = [S15, 0.5 * S15, 0.0, 0.5 * S15, 0.0, 1 / np.sqrt(2)]


def test_read_ijbc(mini_ijbc, mini_ijbc_spec):
    IMAGES, _ = mini_ijbc_spec
    meta = read_ijbc(mini_ijbc)
    assert meta.names == list(IMAGES)
    np.testing.assert_array_equal(meta.templates, [v[0] for v in IMAGES.values()])
    np.testing.assert_allclose(meta.faceness, [v[3] for v in IMAGES.values()])
    np.testing.assert_allclose(meta.landmarks[1], template_landmarks(112) + [30, 5], atol=1e-3)
    np.testing.assert_array_equal(meta.pair_label, [True] + [False] * 5)


def test_template_pooling_end_to_end(mini_ijbc, mean_colour_model):
    meta = read_ijbc(mini_ijbc)
    feats = ijbc_image_features(mean_colour_model, meta, batch_size=3, flip=True)
    # Alignment with the given landmarks crops exactly the face square: pure colour (x2, flip).
    np.testing.assert_allclose(feats[0], [400, 0, 0], atol=1e-3)
    np.testing.assert_allclose(feats[7], [400, 400, 0], atol=1e-3)
    res = evaluate_ijbc_features(feats, meta, fars=[1e-6, 0.2])
    np.testing.assert_allclose(res["scores"], EXPECTED, atol=1e-6)
    assert res["n_templates"] == 5 and res["n_pairs"] == 6 and res["n_genuine"] == 1
    # The genuine pair (0.816) beats every impostor (max 0.707): TAR 1 even at FAR 0.
    assert res["tar_at_far"] == {"1e-06": 1.0, "0.2": 1.0}
    assert res["operating_points"][0]["below_resolution"] is True


def test_faceness_weighting(mini_ijbc, mean_colour_model):
    meta = read_ijbc(mini_ijbc)
    feats = ijbc_image_features(mean_colour_model, meta, flip=False)
    res = evaluate_ijbc_features(feats, meta, use_faceness=True)
    # T1 media 10 = mean(1.0*R, 0.5*G) = (.5,.25,0); + (0,0,1). T2, T3, T4 stay unit colours.
    n = np.sqrt(0.25 + 0.0625 + 1)
    np.testing.assert_allclose(res["scores"][:2], [1 / n, 0.5 / n], atol=1e-6)


def test_pooling_is_media_then_template(rng):
    feats = rng.normal(size=(40, 6)).astype(np.float32)
    templates = rng.integers(0, 5, 40) * 7
    medias = rng.integers(0, 3, 40)
    weights = rng.random(40)
    ut, tf_ = template_features(feats, templates, medias, faceness=weights)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True) * weights[:, None]
    for t, row in zip(ut, tf_):
        acc = sum(unit[(templates == t) & (medias == m)].mean(axis=0)
                  for m in np.unique(medias[templates == t]))
        np.testing.assert_allclose(row, acc / np.linalg.norm(acc), atol=1e-5)
    np.testing.assert_array_equal(ut, np.unique(templates))
    with pytest.raises(ValueError, match="no feature"):
        score_template_pairs(tf_, ut, [0], [999])


@pytest.mark.parametrize("density", [0.0, 0.02, 2.0])  # GEMM only, adaptive, gather only
@pytest.mark.parametrize("n_b", [70, 5000])  # every column needed per block / a few columns
def test_score_index_pairs_kernels(rng, density, n_b):
    f = rng.normal(size=(1300, 16)).astype(np.float32)
    g = rng.normal(size=(n_b, 16)).astype(np.float32)
    i = rng.integers(0, 1300, 3000)
    j = rng.integers(0, n_b, 3000)
    got = score_index_pairs(f, i, j, feats_b=g, block=256, gemm_density=density, chunk=333)
    np.testing.assert_allclose(got, np.einsum("ij,ij->i", f[i], g[j]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        score_index_pairs(f, [0], [n_b], feats_b=g)


def test_occluded_subset(mini_ijbc, tmp_path, mean_colour_model):
    meta = read_ijbc(mini_ijbc)
    feats = ijbc_image_features(mean_colour_model, meta, flip=False)
    lst = tmp_path / "occluded.txt"
    lst.write_text("# occluded images\nloose_crop/3.png\n4.png\n8.png\n")
    occ = read_image_list(lst)
    sub, keep = occluded_subset(meta, occ, mode="images")
    np.testing.assert_array_equal(keep, [2, 3, 6])
    res = evaluate_ijbc_features(feats[keep], sub)
    # T1 is now image 3 only (blue) = T2; T3 and T5 have no occluded image: pairs with them go.
    assert list(zip(sub.pair_t1, sub.pair_t2)) == [(1, 2), (1, 4), (2, 4)]
    np.testing.assert_allclose(res["scores"], [1.0, 0.0, 0.0], atol=1e-6)
    sub, keep = occluded_subset(meta, occ, mode="templates")
    assert keep.size == len(meta) and sub.pair_t1.size == 5  # only (3, 5) dropped
    res = evaluate_ijbc_features(feats[keep], sub)
    np.testing.assert_allclose(res["scores"], EXPECTED[:5], atol=1e-6)
    with pytest.raises(ValueError, match="none of the listed"):
        occluded_subset(meta, ["nope.jpg"])


def test_read_ijbc_errors(mini_ijbc, tmp_path):
    with pytest.raises(FileNotFoundError):
        read_ijbc(tmp_path / "missing")
    (mini_ijbc / "meta" / "ijbc_template_pair_label.txt").write_text("1 99 0\n")
    with pytest.raises(ValueError, match="template 99"):
        read_ijbc(mini_ijbc)
    (mini_ijbc / "meta" / "ijbc_template_pair_label.txt").write_text("1 2 1\n")
    (mini_ijbc / "meta" / "ijbc_face_tid_mid.txt").write_text("1.png 1 10\nzz.png 2 3\n")
    with pytest.raises(ValueError, match="no landmarks"):
        read_ijbc(mini_ijbc)
