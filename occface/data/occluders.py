"""The shapes of the synthetic occluders (numpy + OpenCV), for :mod:`occface.data.occlusion`.

- :func:`block_mask`: a random rectangle;
- :func:`warp_mask_template`: a MaskTheFace face-mask template (``occface/assets/masktheface``,
  :func:`mask_templates`) warped onto the lower face by a homography from its six anchor points to
  six points estimated from the five landmarks (:func:`mask_anchor_points`);
- :func:`sunglasses_mask`: a band over both eyes along the eye line;
- :func:`half_mask`: the upper, lower, left or right half of the face.

Masks are ``uint8 (H, W)`` with 1 = occluded; landmarks are the five ``(x, y)`` points (eyes,
nose tip, mouth corners) in image pixels.
"""

import configparser
import functools

import cv2
import numpy as np

from occface.paths import ASSETS_DIR

MASKTHEFACE_DIR = ASSETS_DIR / "masktheface"
# Frontal templates used when ``template="random"`` (the gas mask also covers the eyes, and the
# ``_left``/``_right`` variants are for turned heads; ask for them by name).
DEFAULT_TEMPLATES = ("surgical", "surgical_blue", "surgical_green", "N95", "KN95", "cloth")


@functools.lru_cache(maxsize=None)
def mask_templates():
    """The MaskTheFace templates: ``{name: (rgba uint8 (h, w, 4) RGBA, anchors (6, 2) float32)}``.

    Anchors are ``mask_a`` .. ``mask_f`` of ``masks.cfg``: left / right face contour at the nose
    tip height (a, c), nose bridge (b), left / right contour at the bottom-lip height (d, f),
    chin (e).
    """
    cfg = configparser.ConfigParser()
    cfg.read(MASKTHEFACE_DIR / "masks.cfg")
    out = {}
    for name in cfg.sections():
        sec = cfg[name]
        if "template" not in sec:
            continue
        path = MASKTHEFACE_DIR / "templates" / (name + ".png")
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise ValueError(f"bad mask template {path}")
        rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
        anchors = np.array([[float(v) for v in sec[f"mask_{k}"].split(",")] for k in "abcdef"],
                           np.float32)
        out[name] = (rgba, anchors)
    return out


def mask_anchor_points(landmarks):
    """Six face points matching the MaskTheFace anchors, estimated from five landmarks.

    With ``e`` the eye midpoint, ``m`` the mouth midpoint, ``n`` the nose tip, ``D`` the eye
    distance, ``u`` the unit vector from the image-left to the image-right eye and ``v`` its
    downward normal: nose bridge ``b = e + 0.35 (n - e)``; contour at the nose height
    ``a, c = n -/+ 1.2 D u``; bottom lip ``l = m + 0.17 D v`` and contour there
    ``d, f = l -/+ 1.0 D u``; chin ``m + 0.75 D v``.

    Parameters
    ----------
    landmarks : array-like, shape (5, 2)

    Returns
    -------
    np.ndarray, float32, shape (6, 2)
        Points a, b, c, d, e, f.
    """
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = lm
    e = (eye_l + eye_r) / 2
    m = (mouth_l + mouth_r) / 2
    dist = np.linalg.norm(eye_r - eye_l)
    if dist < 1e-6:
        raise ValueError("degenerate landmarks: the two eyes coincide")
    u = (eye_r - eye_l) / dist
    v = np.array([-u[1], u[0]])
    b = e + 0.35 * (nose - e)
    a, c = nose - 1.2 * dist * u, nose + 1.2 * dist * u
    lip = m + 0.17 * dist * v
    d, f = lip - 1.0 * dist * u, lip + 1.0 * dist * u
    chin = m + 0.75 * dist * v
    return np.array([a, b, c, d, chin, f], np.float32)


def warp_mask_template(name, landmarks, shape):
    """Warp template ``name`` onto a face.

    Returns
    -------
    rgb : np.ndarray, uint8, shape (H, W, 3)
        The warped template colours.
    mask : np.ndarray, uint8, shape (H, W)
        1 where the warped template's alpha is at least 128.
    """
    templates = mask_templates()
    if name not in templates:
        raise ValueError(f"unknown mask template {name!r}; available: {sorted(templates)}")
    rgba, anchors = templates[name]
    h, w = shape[:2]
    hom, _ = cv2.findHomography(anchors, mask_anchor_points(landmarks), 0)
    if hom is None:
        raise ValueError("could not fit the mask template to these landmarks")
    warped = cv2.warpPerspective(rgba, hom, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return warped[:, :, :3], (warped[:, :, 3] >= 128).astype(np.uint8)


def block_mask(h, w, rng, size=None):
    """A random rectangle, uniformly placed inside the image.

    Parameters
    ----------
    h, w : int
        Image size.
    rng : np.random.Generator
        Draws the size (for a range) and the position.
    size : None, int or (int, int)
        Side in pixels (default ``round(0.375 * min(h, w))``, ID-GAN's 48 on 128x128 faces), or
        ``(min, max)``: height and width drawn independently from that range.

    Returns
    -------
    np.ndarray, uint8, shape (h, w)
        1 inside the rectangle.
    """
    if size is None:
        bh = bw = int(round(0.375 * min(h, w)))
    elif np.isscalar(size):
        bh = bw = int(size)
    else:
        lo, hi = int(size[0]), int(size[1])
        if lo > hi:
            raise ValueError(f"block size range must be (min, max), got {size}")
        bh, bw = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    if not (1 <= bh <= h and 1 <= bw <= w):
        raise ValueError(f"block of {bh}x{bw} does not fit a {h}x{w} image")
    y0 = int(rng.integers(0, h - bh + 1))
    x0 = int(rng.integers(0, w - bw + 1))
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y0 + bh, x0:x0 + bw] = 1
    return mask


def sunglasses_mask(landmarks, shape, width=2.0, height=0.6):
    """Band over both eyes: a rectangle centred on the eye midpoint, along the eye line,
    ``width`` x ``height`` eye distances (default 2.0 x 0.6), rasterised by OpenCV."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    e = (lm[0] + lm[1]) / 2
    dist = np.linalg.norm(lm[1] - lm[0])
    u = (lm[1] - lm[0]) / max(dist, 1e-6)
    v = np.array([-u[1], u[0]])
    hu, hv = width * dist / 2, height * dist / 2
    corners = np.array([e - hu * u - hv * v, e + hu * u - hv * v, e + hu * u + hv * v,
                        e - hu * u + hv * v])
    mask = np.zeros(shape[:2], np.uint8)
    # 4 fractional bits: sub-pixel corner positions.
    cv2.fillConvexPoly(mask, np.round(corners * 16).astype(np.int32), 1, cv2.LINE_8, 4)
    return mask


def half_mask(kind, landmarks, shape, split="center"):
    """Mask of an upper / lower / left / right half.

    ``split="center"``: the image halves (rows ``< H // 2`` are upper, columns ``< W // 2``
    left). ``split="landmarks"``: the row ``round((eye_y + mouth_y) / 2)`` and the column
    ``round((eye_x + mouth_x) / 2)`` of the eye and mouth midpoints split the face.
    "left" is the image's left.
    """
    h, w = shape[:2]
    if split == "center":
        row, col = h // 2, w // 2
    elif split == "landmarks":
        lm = np.asarray(landmarks, np.float64).reshape(5, 2)
        mid = ((lm[0] + lm[1]) / 2 + (lm[3] + lm[4]) / 2) / 2
        row, col = int(np.clip(round(mid[1]), 0, h)), int(np.clip(round(mid[0]), 0, w))
    else:
        raise ValueError(f"split must be 'center' or 'landmarks', got {split!r}")
    mask = np.zeros((h, w), np.uint8)
    if kind == "upper":
        mask[:row] = 1
    elif kind == "lower":
        mask[row:] = 1
    elif kind == "left":
        mask[:, :col] = 1
    elif kind == "right":
        mask[:, col:] = 1
    else:
        raise ValueError(f"not a half kind: {kind!r}")
    return mask
