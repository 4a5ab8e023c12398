"""LFW protocol files, on the real pairs.txt and on tiny made-up files."""
import itertools
import os

import numpy as np
import pytest

from occface.data import lfw_training_identities, read_lfw_pairs


def test_real_pairs_txt(data_root):
    pairs = read_lfw_pairs(data_root / "lfw" / "pairs.txt")
    assert len(pairs) == 6000 and pairs.num_folds == 10
    assert pairs.issame.sum() == 3000
    assert np.array_equal(np.bincount(pairs.folds), [600] * 10)
    assert pairs.pairs[0] == ("Abel_Pacheco", 1, "Abel_Pacheco", 4)
    assert pairs.pairs[300] == ("Abdel_Madi_Shabneh", 1, "Dean_Barker", 1)
    assert pairs.issame[299] and not pairs.issame[300] and pairs.folds[600] == 1
    # Identities are disjoint across the 10 folds.
    per_fold = pairs.fold_identities()
    assert len(per_fold) == 10 and all(len(s) > 350 for s in per_fold)
    for a, b in itertools.combinations(per_fold, 2):
        assert not a & b
    a, b = pairs.image_paths(data_root / "lfw")
    assert a[0].endswith(os.path.join("lfw-deepfunneled", "Abel_Pacheco", "Abel_Pacheco_0001.jpg"))
    assert all(os.path.isfile(p) for p in a[::97] + b[::97])
    a2, _ = pairs.image_paths("/x/aligned", ext="png")
    assert a2[0] == os.path.join("/x/aligned", "Abel_Pacheco", "Abel_Pacheco_0001.png")


def test_dev_files(data_root):
    train = read_lfw_pairs(data_root / "lfw" / "pairsDevTrain.txt")
    test = read_lfw_pairs(data_root / "lfw" / "pairsDevTest.txt")
    assert (len(train), len(test)) == (2200, 1000)
    assert train.num_folds == 1 and train.issame[:1100].all() and not train.issame[1100:].any()


def test_training_identities_disjoint_from_test_folds(data_root):
    root = data_root / "lfw"
    train = lfw_training_identities(root, folds=range(7), min_images=3)
    assert len(train) == 621
    pairs = read_lfw_pairs(root / "pairs.txt")
    test_ids = set().union(*pairs.fold_identities()[7:])
    assert not set(train) & test_ids
    for name in train[::50]:
        assert len(os.listdir(root / "lfw-deepfunneled" / name)) >= 3
    everyone = lfw_training_identities(root, folds=range(10), min_images=1, include_unpaired=True)
    assert len(everyone) == 5749
    with pytest.raises(ValueError, match="fold 10"):
        lfw_training_identities(root, folds=[10])


def test_malformed_files(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("1\t1\nA\t1\t2\nA\t1\tB\tx\n")
    with pytest.raises(ValueError, match=r"pairs.txt:3: expected"):
        read_lfw_pairs(p)
    p.write_text("1\t2\nA\t1\t2\nB\t1\tC\t1\n")
    with pytest.raises(ValueError, match="found 2"):
        read_lfw_pairs(p)
    p.write_text("hello\n")
    with pytest.raises(ValueError, match="header"):
        read_lfw_pairs(p)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_lfw_pairs(tmp_path / "nope.txt")
    p.write_text("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t3\t4\nD\t1\tE\t2\n")
    pairs = read_lfw_pairs(p)
    assert list(pairs.folds) == [0, 0, 1, 1] and list(pairs.issame) == [True, False, True, False]
    assert pairs.fold_identities() == [{"A", "B"}, {"C", "D", "E"}]
    sub = pairs.subset(pairs.fold_indices(1))
    assert sub.pairs == [("C", 3, "C", 4), ("D", 1, "E", 2)]


def test_training_identities_ignore_hidden_folders(tmp_path):
    """A prepared tree holds bookkeeping folders such as .occface_prepare: never identities."""
    (tmp_path / "pairs.txt").write_text("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\nC\t1\tD\t1\n")
    for name in ("A", "B", "C", "D", "E", ".occface_prepare"):
        (tmp_path / name).mkdir()
        for i in range(3):
            (tmp_path / name / f"{name}_{i + 1:04d}.jpg").write_bytes(b"x")
    got = lfw_training_identities(tmp_path, folds=[0], min_images=1, include_unpaired=True)
    assert got == ["A", "B", "E"]
