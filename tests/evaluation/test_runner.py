"""run_evaluation (the logic of tools/evaluate.py) on MegaFace-style trees, IJB-C, .bin sets."""
import cv2
import numpy as np
import pytest

from occface.evaluation import megaface_rank1, read_ijbc, ijbc_image_features
from occface.evaluation.plots import plot_roc
from occface.evaluation.report_table import format_table
from occface.evaluation.run_options import parse_occlusions
from occface.evaluation.runner import run_evaluation


def _write(path, colour, size=112):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size, 3), colour[::-1], np.uint8))


def test_parse_occlusions():
    assert parse_occlusions("none, mask,none") == ["none", "mask"]
    assert parse_occlusions("all")[0] == "none" and "sunglasses" in parse_occlusions("all")
    with pytest.raises(ValueError, match="unknown occlusion 'scarf'"):
        parse_occlusions("none,scarf")


def test_megaface_tree(tmp_path, mean_colour_model):
    colours = {"A": [(200, 0, 0), (200, 40, 0), (200, 90, 0)], "B": [(0, 0, 200), (0, 30, 200)]}
    for ident, cols in colours.items():
        for k, c in enumerate(cols):
            _write(tmp_path / "probes" / ident / f"{k}.png", c)
    distractors = [(200, 20, 0), (90, 90, 90), (0, 100, 200)]
    for k, c in enumerate(distractors):
        _write(tmp_path / "distractors" / "x" / f"{k}.png", c)
    rep = run_evaluation(mean_colour_model, "megaface", tmp_path, occlusions="none,left",
                         occlude="one", align="aligned")
    feats = np.array([c for cols in colours.values() for c in cols], float)
    want = megaface_rank1(feats, ["A"] * 3 + ["B"] * 2, np.array(distractors, float))
    clean, left = rep["conditions"]
    assert clean["rank1"] == pytest.approx(want["rank1"]) and clean["n_pairs"] == 8
    assert 0 < want["rank1"] < 1
    # Blacking out half of a uniform face halves its mean colour: same direction, same ranking.
    assert left["rank1"] == pytest.approx(want["rank1"])
    assert "rank-1" in format_table(rep)
    with pytest.raises(ValueError, match="no ROC"):
        plot_roc(rep, tmp_path / "x.png")


def test_ijbc_with_occluded_subset(mini_ijbc, mean_colour_model, tmp_path):
    (tmp_path / "occ.txt").write_text("3.png\n4.png\n8.png\n")
    rep = run_evaluation(mean_colour_model, "ijbc", mini_ijbc, occlusions="none",
                         occluded_list=tmp_path / "occ.txt", fars=[0.1, 0.5])
    full, sub = rep["conditions"]
    assert full["subset"] == "all" and full["n_pairs"] == 6
    assert sub["subset"] == "occluded_subset:images" and sub["n_pairs"] == 3
    assert "scores" not in full  # 15.6 M scores never go into the report
    table = format_table(rep)
    assert "TAR@1e-1" in table and "occluded_subset" in table
    assert plot_roc(rep, tmp_path / "roc.png") and (tmp_path / "roc.png").stat().st_size > 0


def test_ijbc_occluded_images_change_features(mini_ijbc, mean_colour_model):
    meta = read_ijbc(mini_ijbc)
    clean = ijbc_image_features(mean_colour_model, meta, flip=False)
    occ = ijbc_image_features(mean_colour_model, meta, flip=False, occlusion="lower")
    # Lower half black: mean colour exactly halves (112 rows, 56 blacked out).
    np.testing.assert_allclose(occ, clean / 2, atol=1e-3)


def test_bin_protocol(tmp_path, mean_colour_model, rng):
    from occface.data import write_verification_bin
    imgs = rng.integers(0, 256, (40, 1, 1, 3)).repeat(112, 1).repeat(112, 2).astype(np.uint8)
    issame = np.arange(20) % 2 == 0
    write_verification_bin(tmp_path / "t.bin", imgs, issame)
    rep = run_evaluation(mean_colour_model, "bin", tmp_path / "t.bin", occlusions="none,upper",
                         occlude="one", fars=[0.1])
    clean, occ = rep["conditions"]
    assert clean["n_pairs"] == 20 and clean["fold_sizes"] == [2] * 10
    # Uniform faces: upper-half occlusion scales the embedding -> identical cosine scores.
    assert occ["accuracy"] == pytest.approx(clean["accuracy"])
    assert occ["feature_robustness"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(FileNotFoundError):
        run_evaluation(mean_colour_model, "bin", tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="unknown protocol"):
        run_evaluation(mean_colour_model, "cfp", tmp_path)
