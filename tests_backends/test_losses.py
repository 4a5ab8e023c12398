"""Spatial-regularization losses (paper Eq. 1–2) and arcface_loss vs numpy, under JAX / PyTorch."""
import numpy as np
import pytest
from keras import ops

from occface.losses import (FilterOrthogonalityRegularizer, arcface_loss, filter_orthogonality,
                            response_decorrelation)
from tests_backends.conftest import grad


def _cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def _numpy_eq1(kernel):
    kh, kw, _, c = kernel.shape
    return sum(abs(sum(_cos(kernel[a, b, :, i], kernel[a, b, :, j])
                       for a in range(kh) for b in range(kw)))
               for i in range(c) for j in range(c) if i != j)


def _numpy_eq2(features):
    n, _, _, c = features.shape
    return float(np.mean([sum(_cos(features[s, ..., i].ravel(), features[s, ..., j].ravel()) ** 2
                              for i in range(c) for j in range(c) if i != j)
                          for s in range(n)]))


def _f(x):
    return float(ops.convert_to_numpy(x))


def test_eq1_matches_numpy(rng):
    k = rng.normal(size=(3, 2, 4, 5)).astype("float32")
    np.testing.assert_allclose(_f(filter_orthogonality(k)), _numpy_eq1(k), rtol=1e-5)
    np.testing.assert_allclose(_f(filter_orthogonality(k, reduction="mean")),
                               _numpy_eq1(k) / (5 * 4 * 6), rtol=1e-5)
    np.testing.assert_allclose(_f(FilterOrthogonalityRegularizer(100.0)(k)),
                               100 * _numpy_eq1(k) / (5 * 4 * 6), rtol=1e-5)
    hand = np.zeros((1, 1, 2, 3), "float32")
    hand[0, 0, :, 0], hand[0, 0, :, 1], hand[0, 0, :, 2] = [1, 0], [0, 2], [-3, 0]
    assert _f(filter_orthogonality(hand)) == pytest.approx(2.0)      # |cos| of ±parallel pair ×2


def test_eq2_matches_numpy(rng):
    f = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    np.testing.assert_allclose(_f(response_decorrelation(f)), _numpy_eq2(f), rtol=1e-5)
    np.testing.assert_allclose(_f(response_decorrelation(f, reduction="mean")),
                               _numpy_eq2(f) / 30, rtol=1e-5)


def test_zero_norms_finite_value_and_gradient(rng):
    k = rng.normal(size=(3, 3, 4, 5)).astype("float32")
    k[..., 2] = 0
    f = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    f[..., 1] = 0
    f[1] = 0
    np.testing.assert_allclose(_f(filter_orthogonality(k)), _numpy_eq1(k), rtol=1e-5)
    np.testing.assert_allclose(_f(response_decorrelation(f)), _numpy_eq2(f), rtol=1e-5)
    assert np.isfinite(grad(filter_orthogonality, k)).all()
    assert np.isfinite(grad(response_decorrelation, f)).all()


def test_arcface_loss_is_softmax_cross_entropy(rng):
    logits = rng.normal(size=(5, 7)).astype("float32") * 3
    labels = np.array([0, 6, 3, 3, 1], "int32")
    shifted = logits - logits.max(axis=1, keepdims=True)
    ref = -(shifted[np.arange(5), labels] - np.log(np.exp(shifted).sum(axis=1))).mean()
    np.testing.assert_allclose(_f(arcface_loss(labels, logits)), ref, rtol=1e-5)
    np.testing.assert_allclose(_f(arcface_loss(labels[:, None], logits)), ref, rtol=1e-5)
