"""Image quality for inpainting: PSNR and SSIM, ``tf.image.psnr`` / ``tf.image.ssim`` conventions.

Images follow the package convention: RGB, channels-last, values in ``[0, 255]`` (so the default
``max_val`` is 255). Both functions reduce over the last three axes ``(H, W, C)`` and keep any
leading batch axes, exactly like ``tf.image``; they are implemented in numpy (float64) so they can
be used outside graphs and are tested against ``tf.image``.
"""

import numpy as np

__all__ = ["psnr", "ssim"]


def _pair(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim < 3:
        raise ValueError(f"images must be (..., H, W, C); got shape {a.shape}")
    return a, b


def psnr(a, b, max_val=255.0):
    """Peak signal-to-noise ratio, ``tf.image.psnr`` convention.

    ``PSNR = 20 log10(max_val) - 10 log10(MSE)`` with the MSE over the last three axes; identical
    images give ``inf``.

    Parameters
    ----------
    a, b : array_like, shape (..., H, W, C)
        Images in ``[0, max_val]``.
    max_val : float
        Dynamic range (255 for the package's images).

    Returns
    -------
    np.ndarray of shape (...) (a float for a single image), in dB.
    """
    a, b = _pair(a, b)
    mse = np.mean(np.square(a - b), axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        out = 20.0 * np.log10(max_val) - 10.0 * np.log10(mse)
    return float(out) if np.ndim(out) == 0 else out


def _gaussian_1d(size, sigma):
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * np.square(coords) / sigma ** 2)
    return g / g.sum()


def _filter_valid(x, g):
    """Separable 'VALID' Gaussian filtering over axes -3 (H) and -2 (W) of ``x``."""
    k = g.size
    h, w = x.shape[-3], x.shape[-2]
    y = sum(g[i] * x[..., i:h - k + 1 + i, :, :] for i in range(k))
    return sum(g[i] * y[..., :, i:w - k + 1 + i, :] for i in range(k))


def ssim(a, b, max_val=255.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03,
         return_map=False):
    """Structural similarity (Wang et al. 2004), ``tf.image.ssim`` convention.

    Gaussian window ``filter_size`` x ``filter_size`` with ``filter_sigma``, 'VALID' filtering (no
    padding), ``C1 = (k1 max_val)^2``, ``C2 = (k2 max_val)^2``; the SSIM map is averaged over the
    spatial positions and then over the channels.

    Parameters
    ----------
    a, b : array_like, shape (..., H, W, C)
        Images in ``[0, max_val]``; ``H`` and ``W`` must be at least ``filter_size``.
    max_val : float
    filter_size : int
    filter_sigma : float
    k1, k2 : float
    return_map : bool
        Also return the per-position map, shape ``(..., H-filter_size+1, W-filter_size+1, C)``.

    Returns
    -------
    np.ndarray of shape (...) (a float for a single image); with ``return_map`` a tuple
    ``(ssim, map)``.
    """
    a, b = _pair(a, b)
    if a.shape[-3] < filter_size or a.shape[-2] < filter_size:
        raise ValueError(f"images of {a.shape[-3]}x{a.shape[-2]} are smaller than the SSIM "
                         f"window ({filter_size}x{filter_size})")
    g = _gaussian_1d(filter_size, filter_sigma)
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    mu_ab = mu_a * mu_b
    mu_sq = np.square(mu_a) + np.square(mu_b)
    luminance = (2.0 * mu_ab + c1) / (mu_sq + c1)
    cov2 = 2.0 * _filter_valid(a * b, g) - 2.0 * mu_ab
    var_sum = _filter_valid(np.square(a) + np.square(b), g) - mu_sq
    contrast_structure = (cov2 + c2) / (var_sum + c2)
    smap = luminance * contrast_structure
    out = np.mean(smap, axis=(-3, -2, -1))
    out = float(out) if np.ndim(out) == 0 else out
    return (out, smap) if return_map else out
