"""RMFRD masked -> unmasked protocol on a miniature tree whose numbers are worked out by hand."""
import json

import cv2
import numpy as np
import pytest

from occface.data import template_landmarks
from occface.evaluation import EmbeddingModel
from occface.evaluation.report_table import format_table
from occface.evaluation.rmfrd import evaluate_rmfrd
from occface.evaluation.rmfrd_data import FALLBACKS, crop_fallback, read_rmfrd
from occface.evaluation.rmfrd_protocol import balanced_pair_subset, probe_folds, rmfrd_pairs
from occface.evaluation.runner import run_evaluation

MASKED, UNMASKED = "AFDB_masked_face_dataset", "AFDB_face_dataset"

# Probes in labels.csv order: (identity, genuine cosine g, impostor cosine i). Embeddings have one
# axis per person plus a spare one: a gallery image is its person's unit axis; a probe is g on its
# person's axis, i on the other person's (anna <-> bert; carl -> anna) and sqrt(1 - g^2 - i^2) on
# the spare axis. So each probe scores g against both of its own gallery images and i against
# both of the other person's. With 3 folds probe q is in fold q % 3.
PROBES = [("anna", 0.9, 0.1),   # q0, fold 0
          ("anna", 0.5, 0.3),   # q1, fold 1
          ("anna", 0.2, 0.45),  # q2, fold 2  (rank-1 miss: 0.2 < 0.45)
          ("bert", 0.8, 0.0),   # q3, fold 0
          ("bert", 0.6, 0.7),   # q4, fold 1  (rank-1 miss)
          ("bert", 0.35, 0.1)]  # q5, fold 2
GALLERY = ["anna", "bert", "anna", "bert"]  # interleaved with the probes in labels.csv
PEOPLE = ("anna", "bert", "carl")


def _colour(k):
    return (10 + 12 * k, 90 + k, 160)


def _embedding(ident, g=1.0, i=0.0):
    e = np.zeros(len(PEOPLE) + 1)
    own = PEOPLE.index(ident)
    e[own], e[1 - own if own < 2 else 0], e[-1] = g, i, np.sqrt(1.0 - g * g - i * i)
    return e.tolist()


class CentrePixelModel:
    """Embedding looked up from the colour of the face's centre pixel; records its batches."""

    def __init__(self, table):
        self.table = table
        self.batches = []

    def __call__(self, x):
        self.batches.append(x.copy())
        return np.array([self.table[tuple(int(v) for v in np.rint(img[56, 56]))] for img in x],
                        np.float32)


def write_mini_rmfrd(root, probes=PROBES, gallery=GALLERY, size=48):
    """Uniform-colour crops (YuNet finds no face: every image takes the fallback) + labels.csv.

    Returns ``{colour: embedding}`` for :class:`CentrePixelModel`.
    """
    rows, table, k = ["path,identity,masked"], {}, 0
    entries = [("p", p) for p in probes]
    for n, ident in enumerate(gallery):  # gallery rows interleaved with the first probe rows
        entries.insert(2 * n + 1, ("g", ident))
    for kind, item in entries:
        ident = item[0] if kind == "p" else item
        sub = MASKED if kind == "p" else UNMASKED
        rel = f"{sub}/{ident}/{k}.png"
        (root / sub / ident).mkdir(parents=True, exist_ok=True)
        colour = _colour(k)
        cv2.imwrite(str(root / rel), np.full((size, size, 3), colour[::-1], np.uint8))
        table[colour] = _embedding(*item) if kind == "p" else _embedding(ident)
        rows.append(f"{rel},{ident},{1 if kind == 'p' else 0}")
        k += 1
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return table


@pytest.fixture
def mini(tmp_path):
    root = tmp_path / "rmfrd"
    table = write_mini_rmfrd(root)
    return root, CentrePixelModel(table)


def _model(fake):
    return EmbeddingModel(fake, (112, 112), embedding_size=len(PEOPLE) + 1)


def test_read_rmfrd_splits_masked_probes_from_unmasked_gallery(mini):
    root, _ = mini
    s = read_rmfrd(root)
    assert [k.split("/")[-1] for k in s.probe_keys] == ["0.png", "2.png", "4.png", "6.png",
                                                        "8.png", "9.png"]
    assert s.probe_labels.tolist() == [p[0] for p in PROBES]
    assert s.gallery_labels.tolist() == GALLERY
    assert all("/" + UNMASKED + "/" in k for k in s.gallery_keys)
    assert s.n_identities == 2


def test_pairs_every_probe_times_every_gallery_image_folds_by_probe(mini):
    root, _ = mini
    pairs = rmfrd_pairs(read_rmfrd(root), n_folds=3)
    assert len(pairs) == 6 * 4
    assert pairs.n_genuine == 12 and pairs.n_impostor == 12  # 6 probes x 2 own / 2 other images
    # Probe-major: pair q * 4 + g.
    assert pairs.probe.tolist() == [q for q in range(6) for _ in range(4)]
    assert pairs.gallery.tolist() == list(range(4)) * 6
    # Probe 0 (anna) vs gallery anna, bert, anna, bert.
    assert pairs.issame[:4].tolist() == [True, False, True, False]
    # Every pair of a probe is in the probe's fold; folds interleave the probes.
    for q in range(6):
        assert set(pairs.folds[pairs.probe == q].tolist()) == {q % 3}
    assert probe_folds(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError, match="cannot split 2 probe images into 3 folds"):
        probe_folds(2, 3)


def test_balanced_subset_takes_all_genuine_and_as_many_random_impostors():
    issame = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)
    sub = balanced_pair_subset(issame, seed=0)
    assert sub.size == 6 and np.all(np.diff(sub) > 0)
    assert set(np.flatnonzero(issame)) <= set(sub.tolist())
    impostors = np.flatnonzero(~issame)
    want = impostors[np.random.default_rng(0).choice(impostors.size, 3, replace=False)]
    assert sorted(set(sub.tolist()) - {0, 3, 8}) == sorted(want.tolist())
    np.testing.assert_array_equal(sub, balanced_pair_subset(issame, seed=0))
    with pytest.raises(ValueError, match="cannot balance 3 genuine pairs with only 2 impostor"):
        balanced_pair_subset(np.array([1, 1, 1, 0, 0], bool))


def test_evaluate_rmfrd_numbers_by_hand(mini):
    root, fake = mini
    res = evaluate_rmfrd(_model(fake), root, fars=(0.1, 0.2, 0.4), n_folds=3)
    json.dumps(res)  # JSON-able as it is
    assert (res["n_probes"], res["n_gallery"], res["n_identities"]) == (6, 4, 2)
    assert (res["n_genuine"], res["n_impostor"], res["n_pairs"]) == (12, 12, 24)
    # Balanced set: 12 genuine + 12 of 12 impostors = every pair, so the draw cannot matter.
    assert res["n_balanced_pairs"] == 24 and res["fold_sizes"] == [8, 8, 8]
    # Fold 0 (q0, q3): trained on folds 1+2 (genuine .5 .6 .2 .35, impostor .3 .7 .45 .1), the
    # best accuracy 5/8 is reached at 0.15, 0.325 and 0.475 -> lowest 0.15; fold 0 is then
    # all right (genuine .9 .8 accepted, impostor .1 .0 rejected).
    # Fold 1 (q1, q4): trained on folds 0+2 (genuine .9 .8 .2 .35, impostor .1 .0 .45 .1): 7/8
    # at 0.15; fold 1: genuine .5 .6 right, impostor .3 .7 wrongly accepted -> 1/2.
    # Fold 2 (q2, q5): trained on folds 0+1 (genuine .9 .8 .5 .6, impostor .1 .0 .3 .7): 7/8 at
    # 0.4; fold 2: genuine .2 .35 rejected (wrong), impostor .45 accepted (wrong), .1 right.
    assert res["fold_accuracies"] == pytest.approx([1.0, 0.5, 0.25])
    assert res["thresholds"] == pytest.approx([0.15, 0.15, 0.4], abs=1e-6)
    assert res["accuracy"] == pytest.approx(1.75 / 3)
    assert res["std"] == pytest.approx(np.sqrt(((1 - 1.75 / 3) ** 2 + (0.5 - 1.75 / 3) ** 2
                                                + (0.25 - 1.75 / 3) ** 2) / 3))
    # All pairs, impostors (x2 each) .7 .7 .45 .45 .3 .3 .1 .1 .1 .1 .0 .0 (12):
    # FAR .1 -> 1 false accept allowed, threshold above the 2nd (.7): genuine > .7 are .9 .8.
    # FAR .2 -> 2 allowed, above the 3rd (.45): .9 .8 .5 .6. FAR .4 -> 4, above .3: + .35.
    assert res["tar_at_far"] == pytest.approx({"0.1": 4 / 12, "0.2": 8 / 12, "0.4": 10 / 12})
    assert res["far_resolution"] == pytest.approx(1 / 12)
    assert [p["far"] for p in res["operating_points"]] == pytest.approx([0, 2 / 12, 4 / 12])
    # Rank-1: right when g > i: q0, q1, q3, q5.
    assert res["rank1"] == pytest.approx(4 / 6) and res["n_rank1_correct"] == 4
    assert res["mean_genuine_score"] == pytest.approx(3.35 / 6, abs=1e-6)
    assert res["mean_impostor_score"] == pytest.approx(1.65 / 6, abs=1e-6)
    # Uniform crops: YuNet finds nothing, every image took the fallback.
    assert (res["n_fallback"], res["n_fallback_probes"], res["n_fallback_gallery"]) == (10, 6, 4)
    assert res["fallback"] == "resize" and res["flip"] is False
    assert res["occlusion"] == "none" and res["protocol"] == "rmfrd"


def test_flip_test_embeds_mirrored_faces_too(mini):
    root, fake = mini
    plain = evaluate_rmfrd(_model(fake), root, fars=(0.2,), n_folds=3)
    n_plain = sum(len(b) for b in fake.batches)
    fake.batches.clear()
    flipped = evaluate_rmfrd(_model(fake), root, fars=(0.2,), n_folds=3, flip=True)
    assert n_plain == 10 and sum(len(b) for b in fake.batches) == 20
    assert flipped["flip"] is True
    # Uniform faces look the same mirrored: f(x) + f(mirror(x)) = 2 f(x), same cosines.
    for key in ("accuracy", "rank1", "mean_genuine_score"):
        assert flipped[key] == pytest.approx(plain[key])


def test_balanced_draw_with_three_people(tmp_path):
    # With carl, impostor pairs (7 probes x 4 other people's images = 28) outnumber the genuine
    # ones (7 x 2 = 14): the balanced set is all 14 genuine + 14 drawn impostors, whatever seed.
    root = tmp_path / "r3"
    table = write_mini_rmfrd(root, probes=PROBES + [("carl", 0.5, 0.0)],
                             gallery=GALLERY + ["carl", "carl"])
    for seed in (0, 3):
        res = evaluate_rmfrd(_model(CentrePixelModel(table)), root, n_folds=3, fars=(0.1,),
                             seed=seed)
        assert (res["n_probes"], res["n_gallery"], res["n_identities"]) == (7, 6, 3)
        assert (res["n_genuine"], res["n_impostor"]) == (14, 28)
        assert res["n_balanced_pairs"] == 28 and sum(res["fold_sizes"]) == 28
        # Folds by probe (q % 3): probes 0, 3, 6 / 1, 4 / 2, 5, each with 2 genuine + 2 drawn
        # impostors on average; the genuine pairs alone fix 6 / 4 / 4 of each fold.
        assert res["fold_sizes"][0] >= 6 and res["fold_sizes"][1] >= 4
        assert res["rank1"] == pytest.approx(5 / 7)  # carl's probe (0.5 vs 0) is right


@pytest.mark.parametrize("kind", ["resize", "center"])
def test_fallback_faces(kind):
    # A 224x224 crop whose red channel is x and green channel is y (pixel coordinates).
    y, x = np.mgrid[0:224, 0:224]
    img = np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)
    face, lmk = crop_fallback(kind)(img, 112)
    assert face.shape == (112, 112, 3) and face.dtype == np.uint8
    np.testing.assert_allclose(lmk, template_landmarks(112))
    if kind == "resize":  # the whole crop, halved
        assert face[0, 0, 0] <= 1 and face[-1, -1, 0] >= 222
    else:  # the central 60 % (134 px, from 45 to 179)
        assert 44 <= face[0, 0, 0] <= 46 and 177 <= face[-1, -1, 0] <= 179
    with pytest.raises(ValueError, match="unknown fallback 'blur'"):
        crop_fallback("blur")


def test_fallbacks_use_no_rmfrd_statistic():
    # RMFRD is evaluation only: the fallbacks are plain crops, the default resizes the whole crop.
    import occface.evaluation.rmfrd as rmfrd
    import occface.evaluation.rmfrd_data as rmfrd_data
    assert FALLBACKS == ("resize", "center")
    assert not hasattr(rmfrd, "RMFRD_CROP_LANDMARKS")
    assert not hasattr(rmfrd_data, "RMFRD_CROP_LANDMARKS")
    assert crop_fallback().kind == "resize"
    with pytest.raises(ValueError, match="unknown fallback 'landmarks'"):
        crop_fallback("landmarks")


@pytest.mark.parametrize("case, error, message", [
    ("no_dir", FileNotFoundError, "RMFRD directory not found: {root}"),
    ("no_labels", FileNotFoundError, "RMFRD labels not found: {root}/labels.csv"),
    ("no_masked", ValueError,
     "{root}/labels.csv: no masked rows (masked=1): no probes to evaluate"),
    ("no_unmasked", ValueError,
     "{root}/labels.csv: no unmasked rows (masked=0): no gallery to match against"),
    ("bad_header", ValueError,
     "{root}/labels.csv: expected the header 'path,identity,masked', got 'file,name,masked'"),
    ("bad_masked", ValueError, "{root}/labels.csv:2: masked must be 0 or 1, got 'yes'"),
    ("missing_image", FileNotFoundError,
     "{root}/labels.csv:3: image not found: {root}/AFDB_face_dataset/anna/gone.png"),
    ("orphan", ValueError,
     "{root}/labels.csv: masked identities without unmasked images: carl"),
])
def test_errors_name_the_problem(tmp_path, case, error, message):
    root = tmp_path / "rmfrd"
    img = np.zeros((8, 8, 3), np.uint8)
    for rel in ("AFDB_masked_face_dataset/anna/0.png", "AFDB_face_dataset/anna/1.png",
                "AFDB_masked_face_dataset/carl/2.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img)
    masked, unmasked = "AFDB_masked_face_dataset/anna/0.png,anna,1", \
        "AFDB_face_dataset/anna/1.png,anna,0"
    lines = {"no_masked": ["path,identity,masked", unmasked],
             "no_unmasked": ["path,identity,masked", masked],
             "bad_header": ["file,name,masked", masked, unmasked],
             "bad_masked": ["path,identity,masked", masked.replace(",1", ",yes")],
             "missing_image": ["path,identity,masked", masked,
                               "AFDB_face_dataset/anna/gone.png,anna,0"],
             "orphan": ["path,identity,masked", masked, unmasked,
                        "AFDB_masked_face_dataset/carl/2.png,carl,1"]}.get(case)
    if lines is not None:
        (root / "labels.csv").write_text("\n".join(lines) + "\n")
    target = tmp_path / "absent" if case == "no_dir" else root
    want = message.format(root=target)
    with pytest.raises(error) as err:
        read_rmfrd(target)
    assert str(err.value) == want
    with pytest.raises(error) as err:  # the same from the protocol
        evaluate_rmfrd(_model(CentrePixelModel({})), target)
    assert str(err.value) == want


def test_runner_report_and_table(tmp_path):
    # The runner uses the protocol's 10 folds: 12 probes (PROBES twice).
    root = tmp_path / "r12"
    fake = CentrePixelModel(write_mini_rmfrd(root, probes=PROBES * 2))
    rep = run_evaluation(_model(fake), "rmfrd", root, seed=0, fars=[0.1, 0.2],
                         rmfrd_fallback="resize")
    (cond,) = rep["conditions"]
    assert rep["protocol"] == "rmfrd" and rep["n_pairs"] == 12 * 4
    assert rep["faces"]["mode"] == "detect" and rep["faces"]["not_found"] == 16
    assert cond["n_folds"] == 10 and len(cond["fold_accuracies"]) == 10
    assert cond["fallback"] == "resize" and cond["n_fallback"] == 16
    # Each probe appears twice: rank-1 and TAR as for the six (4/6; 4/12 at FAR 0.1).
    assert cond["rank1"] == pytest.approx(4 / 6)
    assert cond["tar_at_far"] == pytest.approx({"0.1": 4 / 12, "0.2": 8 / 12})
    table = format_table(rep)
    assert "balanced acc (%)" in table and "TAR@1e-1" in table and "rank-1 (%)" in table
    assert "masked vs unmasked" in table and "FAR resolution 1/24" in table
    assert "12 masked + 4 unmasked crops, fallback resize" in table
    json.dumps(rep)
    # Aligned mode: the crops are used as they are, no detection, no fallback.
    rep = run_evaluation(_model(fake), "rmfrd", root, align="aligned")
    assert rep["conditions"][0]["n_fallback"] == 0 and rep["faces"]["mode"] == "aligned"
    # Default FARs 1e-2, 1e-3 are below 1/24: no false accept, genuine above .7 (.9, .8).
    assert rep["conditions"][0]["tar_at_far"] == pytest.approx({"0.01": 1 / 3, "0.001": 1 / 3})


@pytest.mark.parametrize("kwargs, message", [
    ({"occlusions": "none,mask"}, "protocol 'rmfrd' has real masks, synthetic occlusion does not "
                                  "apply: --occlusion must be 'none', got 'none,mask'"),
    ({"max_pairs": 100}, "protocol 'rmfrd' always evaluates every pair: --max_pairs is not "
                         "supported"),
    ({"rmfrd_fallback": "blur"}, "unknown fallback 'blur'; choose from resize, center"),
])
def test_runner_rejects_options_rmfrd_cannot_honour(mini, kwargs, message):
    root, fake = mini
    with pytest.raises(ValueError) as err:
        run_evaluation(_model(fake), "rmfrd", root, **kwargs)
    assert str(err.value) == message
    assert fake.batches == []  # rejected before any face was embedded


def test_real_rmfrd_subset_pair_counts(data_root):
    s = read_rmfrd(data_root / "rmfrd_subset")
    assert (len(s.probe_keys), len(s.gallery_keys), s.n_identities) == (362, 1358, 23)
    pairs = rmfrd_pairs(s)
    assert (pairs.n_genuine, pairs.n_impostor) == (21390, 470206)
    assert len(pairs) == 362 * 1358
    assert np.bincount(pairs.folds).tolist() == [37 * 1358] * 2 + [36 * 1358] * 8
    assert balanced_pair_subset(pairs.issame).size == 2 * 21390
