"""Rank-1 identification with distractors (MegaFace-style), chunked."""
import numpy as np
import pytest

from occface.evaluation import max_similarity, megaface_rank1, rank1_identification


def unit(deg):
    r = np.deg2rad(np.atleast_1d(deg))
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def test_rank1_with_distractors():
    probes, plabels = unit([0, 90]), ["A", "B"]
    gallery, glabels = unit([10, 80]) * 3.0, ["A", "B"]  # scale must not matter (cosine)
    assert rank1_identification(probes, plabels, gallery, glabels)["rank1"] == 1.0
    # A distractor at 5 deg is closer to probe A than its gallery image; one at 45 deg is not
    # closer to probe B than its gallery image at 80 deg.
    distractors = unit([5, 45, 200, 300])
    res = rank1_identification(probes, plabels, gallery, glabels, distractors, chunk_size=1)
    assert res["rank1"] == 0.5 and res["correct"].tolist() == [False, True]
    assert res["n_distractors"] == 4
    # Streamed distractor chunks give the same answer.
    res2 = rank1_identification(probes, plabels, gallery, glabels,
                                (distractors[k:k + 3] for k in range(0, 4, 3)))
    assert res2["correct"].tolist() == [False, True]
    # A tie with a distractor is a failure.
    tie = rank1_identification(probes, plabels, gallery, glabels, unit([10]))
    assert tie["correct"].tolist() == [False, True]


def test_megaface_rank1_hand_computed():
    labels = ["A", "A", "A", "B", "B"]
    probes = unit([0, 20, 40, 180, 190])
    distractors = unit([15, 100])
    # a1: nearest distractor 15 deg away -> (a1,a2) 20, (a1,a3) 40 fail.
    # a2: 5 deg -> both fail. a3: 25 deg -> (a3,a2) 20 succeeds, (a3,a1) fails.
    # b1: 80 deg, b2: 90 deg -> (b1,b2), (b2,b1) succeed.  3 of 8 ordered pairs.
    res = megaface_rank1(probes, labels, distractors, chunk_size=1)
    assert res["n_pairs"] == 8 and res["n_successes"] == 3
    assert res["rank1"] == pytest.approx(3 / 8)
    np.testing.assert_allclose(res["per_probe_success"], [0, 0, 0.5, 1, 1])
    # Occluded probes vs clean gallery: probe a1 moved to 30 deg now beats the distractor for a2
    occl = unit([30, 20, 40, 180, 190])
    res = megaface_rank1(occl, labels, distractors, gallery_feats=probes)
    # a1' (30): d_best = cos 15; to a2 (20): 10 -> win; to a3 (40): 10 -> win.
    assert res["per_probe_success"][0] == 1.0


def test_max_similarity_chunking_matches_full(rng):
    q = rng.normal(size=(7, 5))
    g = rng.normal(size=(103, 5))
    best, arg, n = max_similarity(q, g, chunk_size=10)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    full = qn @ gn.T
    np.testing.assert_allclose(best, full.max(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(arg, full.argmax(axis=1))
    assert n == 103
