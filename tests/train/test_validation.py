import cv2
import numpy as np

from occface.train.validation import lfw_validation_sets


def _lfw_tree(tmp_path, n=5, folds=2):
    """pairs.txt with ``folds`` folds of n same + n different pairs, and 8x8 faces for them."""
    lines = [f"{folds}\t{n}"]
    names = set()
    for f in range(folds):
        for i in range(n):
            lines.append(f"P{f}_{i}\t1\t2")
            names.add(f"P{f}_{i}")
        for i in range(n):
            lines.append(f"P{f}_{i}\t1\tP{f}_{(i + 1) % n}\t2")
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    for name in names:
        (tmp_path / name).mkdir()
        for j in (1, 2):
            cv2.imwrite(str(tmp_path / name / f"{name}_{j:04d}.jpg"),
                        rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return tmp_path / "pairs.txt"


def test_one_validation_fold_is_split_into_interleaved_subfolds(tmp_path):
    pairs = _lfw_tree(tmp_path)
    one = lfw_validation_sets(pairs, tmp_path, [1], image_size=8)["clean"]
    # fold 1 alone: 10 pairs (5 same, then 5 different) in sub-folds i % 5
    np.testing.assert_array_equal(one.folds, np.arange(10) % 5)
    np.testing.assert_array_equal(one.issame, [True] * 5 + [False] * 5)
    for k in range(5):  # every sub-fold holds one pair of each kind
        assert sorted(one.issame[one.folds == k]) == [False, True]
    two = lfw_validation_sets(pairs, tmp_path, [0, 1], image_size=8)["clean"]
    np.testing.assert_array_equal(two.folds, [0] * 10 + [1] * 10)  # several folds: their own ids
