"""fill_estimated_occlusion: only faces the estimator counts occluded are filled, in the hole."""
import numpy as np
import pytest

from occface.occlusion_estimate import fill_estimated_occlusion


class _LowerHalfEstimator:
    """Marks the lower half of every face whose mean is above 100 as occluded."""
    threshold = 0.05

    def masks(self, faces):
        out = np.zeros(faces.shape[:3], np.uint8)
        for i, f in enumerate(faces):
            if f.mean() > 100:
                out[i, f.shape[0] // 2:] = 1
        return out


def test_fills_only_occluded_faces_inside_the_hole():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 80, (5, 16, 16, 3)).astype(np.uint8)
    faces[[1, 3]] += 120                       # these two are "occluded"
    calls = []

    def inpaint(images, masks):
        calls.append(len(images))
        assert masks.shape == images.shape[:3] + (1,) and masks.dtype == np.float32
        return np.full(images.shape, 7, np.uint8)

    filled, masks, occluded, fractions = fill_estimated_occlusion(
        faces, inpaint, _LowerHalfEstimator(), batch_size=1)
    assert occluded.tolist() == [False, True, False, True, False]
    assert calls == [1, 1]
    assert np.array_equal(filled[[0, 2, 4]], faces[[0, 2, 4]])
    assert np.all(filled[1, 8:] == 7) and np.array_equal(filled[1, :8], faces[1, :8])
    assert masks[1, 8:].all() and not masks[0].any()
    assert fractions[0] == 0 and 0.3 < fractions[1] < 0.7


def test_no_occlusion_never_calls_inpaint_and_checks_shapes():
    faces = np.zeros((3, 16, 16, 3), np.uint8)
    filled, _, occluded, _ = fill_estimated_occlusion(
        faces, lambda *a: pytest.fail("inpaint called"), _LowerHalfEstimator())
    assert not occluded.any() and np.array_equal(filled, faces)
    with pytest.raises(ValueError):
        fill_estimated_occlusion(faces[0], lambda *a: a[0], _LowerHalfEstimator())
    bright = np.full((2, 16, 16, 3), 200, np.uint8)
    with pytest.raises(ValueError):
        fill_estimated_occlusion(bright, lambda i, m: i[:, :8], _LowerHalfEstimator())


def test_works_with_classical_inpaint():
    from occface.inpainting.classical import classical_inpaint
    faces = np.full((2, 16, 16, 3), 150, np.uint8)
    faces[:, 8:] = 80
    filled, *_ = fill_estimated_occlusion(faces, classical_inpaint, _LowerHalfEstimator())
    assert filled.dtype == np.uint8 and filled[:, 8:].mean() > 100  # filled from above
