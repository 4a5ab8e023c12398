"""tools/evaluate.py --plot: the per-condition accuracy bars beside the ROC curves."""
import cv2
import numpy as np
import pytest

from occface.evaluation.plots import accuracy_plot_path, plot_condition_accuracy


def _report(conditions, protocol="lfw"):
    return {"protocol": protocol, "model": {"source": "m"}, "conditions": conditions}


def test_bars_have_the_accuracies_heights_in_report_order(tmp_path):
    conds = [{"occlusion": "none", "occlude": "one", "accuracy": 0.893, "std": 0.012},
             {"occlusion": "mask", "occlude": "one", "accuracy": 0.763, "std": 0.02},
             {"occlusion": "sunglasses", "occlude": "one", "accuracy": 0.697, "std": 0.03},
             {"occlusion": "block", "occlude": "both", "accuracy": 0.451, "std": 0.0}]
    out = plot_condition_accuracy(_report(conds), tmp_path / "p" / "roc_accuracy.png")
    png = cv2.imread(out["path"])[..., ::-1]
    assert png.shape[1::-1] == out["size"] and out["metric"] == "accuracy"
    assert [b["label"] for b in out["bars"]] == ["clean", "mask (one)", "sunglasses (one)",
                                                 "block (both)"]
    assert [b["value"] for b in out["bars"]] == pytest.approx([89.3, 76.3, 69.7, 45.1])
    heights = np.array([b["box"][3] - b["box"][1] for b in out["bars"]], float)
    np.testing.assert_allclose(heights / heights[0], np.array([89.3, 76.3, 69.7, 45.1]) / 89.3,
                               atol=0.02)
    bottoms = {b["box"][3] for b in out["bars"]}
    assert max(bottoms) - min(bottoms) <= 1                        # one baseline
    xs = [b["box"][0] for b in out["bars"]]
    assert xs == sorted(xs)
    # clean in blue, occluded conditions in orange: the PNG has them where the boxes say
    for bar, rgb in zip(out["bars"], [(76, 114, 176)] + [(221, 132, 82)] * 3):
        x0, y0, x1, y1 = bar["box"]
        patch = png[y0 + 3:y1 - 3, x0 + 3:x1 - 3].reshape(-1, 3).astype(int)
        centre = patch[len(patch) // 2]
        assert np.abs(np.median(patch, axis=0) - rgb).max() <= 3, (bar, centre)


def test_rank1_fallback_and_nothing_to_plot(tmp_path):
    out = plot_condition_accuracy(_report([{"occlusion": "none", "occlude": "one",
                                            "rank1": 0.5}], "megaface"), tmp_path / "m.png")
    assert out["metric"] == "rank1" and out["bars"][0]["value"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="ijbc reports no accuracy"):
        plot_condition_accuracy(_report([{"occlusion": "none", "tar_at_far": {}}], "ijbc"),
                                tmp_path / "i.png")


def test_accuracy_plot_path():
    assert str(accuracy_plot_path("results/roc.png")) == "results/roc_accuracy.png"
    assert str(accuracy_plot_path("r/lfw")) == "r/lfw_accuracy.png"
