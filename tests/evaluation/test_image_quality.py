"""PSNR / SSIM against tf.image."""
import numpy as np
import pytest
import tensorflow as tf

from occface.evaluation import psnr, ssim


def _images(rng, shape=(3, 24, 28, 3)):
    a = rng.integers(0, 256, shape).astype(np.uint8)
    noise = rng.normal(0, 20, shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_tf(rng):
    a, b = _images(rng)
    np.testing.assert_allclose(psnr(a, b), tf.image.psnr(a, b, max_val=255).numpy(), rtol=1e-5)
    af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
    np.testing.assert_allclose(psnr(af, bf, max_val=1.0),
                               tf.image.psnr(af, bf, max_val=1.0).numpy(), rtol=1e-5)
    assert psnr(a[0], a[0]) == np.inf


def test_psnr_hand_computed():
    a = np.zeros((2, 2, 1))
    b = np.array([[[255.0], [0.0]], [[0.0], [0.0]]])  # MSE = 255^2 / 4
    assert psnr(a, b) == pytest.approx(10 * np.log10(4))


def test_ssim_matches_tf(rng):
    a, b = _images(rng)
    want = tf.image.ssim(tf.constant(a), tf.constant(b), max_val=255).numpy()
    np.testing.assert_allclose(ssim(a, b), want, atol=2e-5)
    af, bf = a.astype(np.float32), b.astype(np.float32) * 0.7 + 20
    want = tf.image.ssim(af, bf, max_val=255.0).numpy()
    np.testing.assert_allclose(ssim(af, bf), want, atol=2e-5)
    assert ssim(a[0], a[0]) == pytest.approx(1.0)


def test_ssim_rejects_small_or_mismatched():
    with pytest.raises(ValueError, match="smaller"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
