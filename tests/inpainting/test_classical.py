"""OpenCV Telea / Navier-Stokes baselines."""
import numpy as np
import pytest

from occface.inpainting import classical_inpaint


def _smooth(size=32):
    yy, xx = np.mgrid[:size, :size]
    ramp = np.stack([4 * xx + 40, 3 * yy + 60, 2 * (xx + yy) + 20], axis=-1)
    return ramp.astype(np.uint8)


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_fills_smooth_image_and_keeps_known_pixels(method):
    image = _smooth()
    mask = np.zeros((32, 32), bool)
    mask[10:20, 12:22] = True
    occluded = image.copy()
    occluded[mask] = 255  # a white occluder
    out = classical_inpaint(occluded, mask, method=method)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[~mask], image[~mask])
    err = np.abs(out[mask].astype(float) - image[mask]).mean()
    assert err < 8.0, err  # a linear ramp is easy to continue
    assert np.abs(255.0 - image[mask]).mean() > 60  # ... and the occluder was far off


def test_batch_float_and_empty_mask():
    image = _smooth().astype(np.float32) + 0.3
    masks = np.zeros((2, 32, 32, 1), np.uint8)
    masks[0, 5:9, 5:9] = 1
    out = classical_inpaint(np.stack([image, image]), masks, method="ns")
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], np.rint(image).astype(np.uint8))


def test_errors():
    with pytest.raises(ValueError, match="method"):
        classical_inpaint(_smooth(), np.zeros((32, 32)), method="patchmatch")
    with pytest.raises(ValueError, match="does not match"):
        classical_inpaint(_smooth(), np.zeros((16, 16)))
