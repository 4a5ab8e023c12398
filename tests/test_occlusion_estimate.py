"""Occlusion verdicts from masks on aligned faces, and the segmenter's shapes."""
import numpy as np
import pytest

from occface.occlusion_estimate import (OcclusionEstimator, build_occlusion_segmenter,
                                        describe_mask, face_region)


def test_face_region_is_centred_ellipse():
    region = face_region(112)
    assert region[66, 56] and not region[0, 0] and not region[111, 111]
    # symmetric left/right about the template's vertical axis x = 56
    assert np.array_equal(region[:, 16:56], region[:, 57:97][:, ::-1])


@pytest.mark.parametrize("rows,cols,kind", [
    (slice(80, 112), slice(0, 112), "lower"),      # a face mask
    (slice(40, 60), slice(0, 112), "upper"),       # sunglasses band
    (slice(0, 112), slice(0, 56), "left"),
    (slice(0, 112), slice(56, 112), "right"),
    (slice(40, 90), slice(30, 82), "block"),       # centred block: no half dominates
])
def test_describe_mask_kinds(rows, cols, kind):
    mask = np.zeros((112, 112), np.uint8)
    mask[rows, cols] = 1
    verdict = describe_mask(mask)
    assert verdict["occluded"] and verdict["kind"] == kind
    region = face_region(112)
    expected = (mask.astype(bool) & region).sum() / region.sum()
    assert verdict["fraction"] == pytest.approx(expected)


def test_describe_mask_clean_and_small():
    assert describe_mask(np.zeros((112, 112))) == {
        "occluded": False, "fraction": 0.0, "kind": None,
        "upper": 0.0, "lower": 0.0, "left": 0.0, "right": 0.0}
    speck = np.zeros((112, 112), np.uint8)
    speck[60:64, 50:54] = 1          # 16 px: far below 5 % of the face region
    assert not describe_mask(speck)["occluded"]
    assert describe_mask(speck, threshold=0.001)["occluded"]


def test_segmenter_shapes_and_estimator(tmp_path):
    model = build_occlusion_segmenter(image_size=32, width=4)
    faces = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    prob = model.predict_on_batch(faces[:, ::2, ::2].astype(np.float32))
    assert prob.shape == (2, 32, 32, 1) and (prob > 0).all() and (prob < 1).all()
    path = tmp_path / "seg.keras"
    model.save(path)
    est = OcclusionEstimator(path)
    verdict, mask = est.estimate(faces[0])
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1}  # back at the face's size
    assert set(verdict) >= {"occluded", "fraction", "kind"}
    with pytest.raises(FileNotFoundError, match="segmenter weights not found"):
        OcclusionEstimator(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="divisible by 8"):
        build_occlusion_segmenter(image_size=30)


def test_training_learns_synthetic_occlusions(tmp_path):
    """A few steps on a tiny folder of smooth synthetic faces: the loss falls."""
    import cv2

    from occface.occlusion_estimate import train_occlusion_segmenter
    rng = np.random.default_rng(0)
    for person in range(3):
        (tmp_path / f"p{person}").mkdir()
        for i in range(4):
            base = np.full((32, 32, 3), rng.integers(80, 200, 3), np.uint8)
            base = cv2.GaussianBlur(base + rng.integers(0, 20, (32, 32, 3)).astype(np.uint8),
                                    (5, 5), 0)
            cv2.imwrite(str(tmp_path / f"p{person}" / f"{i}.png"), base)
    model, history = train_occlusion_segmenter(tmp_path, steps=60, batch_size=8, image_size=32,
                                               width=4, kinds=("block",), seed=1)
    assert history["loss"][-1] < history["loss"][0]
    assert model.output_shape == (None, 32, 32, 1)


def test_shipped_segmenter_finds_a_synthetic_mask_on_a_real_face():
    """The shipped weights (trained on LFW folds 1-7) on a sample face from folds 8-10."""
    from occface.data import load_aligned_face, occlude, template_landmarks
    from occface.occlusion_estimate import DEFAULT_WEIGHTS, default_occlusion_estimator
    from occface.paths import REPO_ROOT

    assert DEFAULT_WEIGHTS.is_file()
    est = default_occlusion_estimator()
    face, _, found = load_aligned_face(
        REPO_ROOT / "saved_models" / "samples" / "Naomi_Watts" / "Naomi_Watts_0002.jpg", 112)
    assert found
    assert not est(face)["occluded"]
    masked, truth = occlude(face, template_landmarks(112), "mask", np.random.default_rng(3))
    verdict, pred = est.estimate(masked)
    assert verdict["occluded"] and verdict["kind"] == "lower"
    iou = (pred.astype(bool) & truth.astype(bool)).sum() / (pred.astype(bool)
                                                            | truth.astype(bool)).sum()
    assert iou > 0.8
