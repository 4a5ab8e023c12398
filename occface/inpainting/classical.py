"""Classical inpainting baselines: OpenCV Telea (fast marching) and Navier–Stokes."""

import numpy as np

_METHODS = {"telea": "INPAINT_TELEA", "ns": "INPAINT_NS"}


def classical_inpaint(image, mask, method="telea", radius=3):
    """Fill the hole with OpenCV's Telea or Navier–Stokes inpainting.

    Parameters
    ----------
    image : (H, W, 3) or (N, H, W, 3) array, uint8 or float in [0, 255]
        RGB face(s); floats are rounded and clipped to uint8 first.
    mask : (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1) array
        Non-zero / True = hole.
    method : {"telea", "ns"}
    radius : float
        Inpainting neighbourhood radius in pixels.

    Returns
    -------
    uint8 array shaped like ``image``; pixels outside the hole are the (uint8) input exactly.
    """
    import cv2

    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    image = np.asarray(image)
    mask = np.asarray(mask)
    single = image.ndim == 3
    if single:
        image = image[None]
        mask = mask[None]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) or (N, H, W, 3), got shape {image.shape}")
    if mask.ndim == 4:
        if mask.shape[-1] != 1:
            raise ValueError(f"mask must have one channel, got shape {mask.shape}")
        mask = mask[..., 0]
    if mask.shape != image.shape[:3]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    flag = getattr(cv2, _METHODS[method])
    out = np.empty_like(image)
    for i in range(image.shape[0]):
        hole = (mask[i] > 0).astype(np.uint8)
        if not hole.any():
            out[i] = image[i]
            continue
        filled = cv2.inpaint(np.ascontiguousarray(image[i]), hole, float(radius), flag)
        out[i] = np.where(hole[..., None] > 0, filled, image[i])
    return out[0] if single else out
