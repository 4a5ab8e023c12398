"""Five-point face alignment onto the ArcFace template, and one-call "read, detect, align"."""

import logging
import os
import pathlib

import cv2
import numpy as np

from occface.data.detection import NoFaceError, default_detector

log = logging.getLogger(__name__)

# The standard ArcFace / insightface 112x112 five-point template (x, y): eye on the image's left,
# eye on the image's right, nose tip, mouth corner left, mouth corner right.
ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float32)


def size_hw(size):
    """``(height, width)`` of an int side or a ``(height, width)`` pair; ``ValueError`` if not
    positive."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
        h, w = int(size[0]), int(size[1])
    else:
        h = w = int(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def template_landmarks(size=112):
    """The ArcFace five-point template for an output crop of ``size``.

    Parameters
    ----------
    size : int or (int, int)
        Output side (square) or ``(height, width)``. The 112x112 template is scaled by
        ``height / 112`` and centred horizontally, so ``(112, 96)`` gives the classic 112x96
        template (x shifted by -8) and ``128`` the 112 template scaled by 128/112.

    Returns
    -------
    np.ndarray, float32, shape (5, 2)
        ``(x, y)`` pixel coordinates in the output crop.
    """
    h, w = size_hw(size)
    s = h / 112.0
    out = ARCFACE_TEMPLATE_112 * s
    out[:, 0] += (w - 112.0 * s) / 2.0
    return out.astype(np.float32)


def similarity_transform(src, dst):
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping ``src``
    onto ``dst`` (Umeyama, 1991, without reflection).

    Parameters
    ----------
    src, dst : array-like, shape (N, 2)

    Returns
    -------
    np.ndarray, float64, shape (2, 3)
        Affine matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two (N, 2) point arrays with N >= 2, got {src.shape} and "
                         f"{dst.shape}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("landmarks contain NaN or infinity")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("degenerate landmarks: all points coincide")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def transform_points(matrix, points):
    """Apply a (2, 3) affine matrix to (N, 2) points."""
    points = np.asarray(points, np.float64)
    return (points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]).astype(np.float32)


def align_face(image, landmarks, size=112, return_matrix=False, border_value=0):
    """Warp a face onto the ArcFace five-point template.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, C) or (H, W)
        Any channel order (RGB stays RGB, BGR stays BGR); uint8 or float.
    landmarks : array-like, shape (5, 2)
        Five landmarks in the template's order (see :class:`occface.data.Face`).
    size : int or (int, int)
        Output side or ``(height, width)``: 112 for the recognizer, 128 for inpainting,
        ``(112, 96)`` for the narrow crop.
    return_matrix : bool
        Also return the (2, 3) matrix mapping input pixels to output pixels.
    border_value : number
        Fill for output pixels that fall outside the input.

    Returns
    -------
    np.ndarray, same dtype as ``image``, shape (h, w[, C])
        The aligned crop; with ``return_matrix`` a tuple ``(crop, matrix)``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"expected an image (H, W[, C]), got shape {image.shape}")
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2), got {landmarks.shape}")
    h, w = size_hw(size)
    matrix = similarity_transform(landmarks, template_landmarks((h, w)))
    channels = image.shape[2] if image.ndim == 3 else 1
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(border_value,) * min(channels, 4))
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return (out, matrix) if return_matrix else out


def read_image(path, flags=cv2.IMREAD_COLOR):
    """Read an image file with OpenCV (BGR uint8), with errors that name the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file exists but is not an image OpenCV can decode (corrupt, truncated header,
        empty, other format).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # also works for non-ASCII paths
    except OSError as e:
        raise ValueError(f"cannot read image file {path}: {e}") from e
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image file {path}: not an image or corrupt")
    return image


def center_crop(image, size=112, fraction=0.6):
    """Resize the central ``fraction`` of the shorter side to ``size`` (a no-face fallback).

    For 250x250 LFW images ``fraction=0.6`` is the central 150 px, where the face sits.
    """
    h, w = size_hw(size)
    ih, iw = image.shape[:2]
    side = max(1, int(round(min(ih, iw) * fraction)))
    y0, x0 = (ih - side) // 2, (iw - side) // 2
    crop = image[y0:y0 + side, x0:x0 + side]
    # Keep the output aspect ratio: crop a (side, side*w/h) window when the output is not square.
    if w != h:
        cw = max(1, min(iw, int(round(side * w / h))))
        x0 = (iw - cw) // 2
        crop = image[y0:y0 + side, x0:x0 + cw]
    interp = cv2.INTER_AREA if side > h else cv2.INTER_LINEAR
    return cv2.resize(crop, (w, h), interpolation=interp)


def detect_and_align(image_bgr, size=112, detector=None, fallback="center", pick="central",
                     name="image", center_fraction=0.6):
    """Detect the preferred face of a BGR image and align it.

    Returns ``(aligned_bgr, landmarks (5, 2) in output coordinates, found)``; see
    :func:`load_aligned_face` for the parameters.
    """
    if fallback not in ("center", None):
        raise ValueError(f"fallback must be 'center' or None, got {fallback!r}")
    detector = detector if detector is not None else default_detector()
    face = detector.best_face(image_bgr, pick=pick)
    if face is None:
        if fallback is None:
            raise NoFaceError(f"no face found in {name}")
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        return center_crop(image_bgr, size, center_fraction), template_landmarks(size), False
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    aligned, matrix = align_face(image_bgr, face.landmarks, size, return_matrix=True)
    return aligned, transform_points(matrix, face.landmarks), True


def load_aligned_face(path, size=112, detector=None, fallback="center", pick="central",
                      center_fraction=0.6):
    """Read an image file, detect the face (YuNet) and align it on the ArcFace template.

    Parameters
    ----------
    path : str or path
        Any image OpenCV reads (JPEG, PNG, BMP, PGM, ...); grey images become 3-channel.
    size : int or (int, int)
        Output side or ``(height, width)``.
    detector : FaceDetector, optional
        Defaults to a shared :class:`FaceDetector` with default settings.
    fallback : {"center", None}
        What to do when no face is found: ``"center"`` returns a centre crop (the central
        ``center_fraction`` of the shorter side, resized) with ``found=False``; ``None`` raises.
    pick : {"central", "largest", "score"}
        Which face to align when there are several (see :func:`occface.data.order_faces`).

    Returns
    -------
    rgb : np.ndarray, uint8, shape (h, w, 3)
    landmarks : np.ndarray, float32, shape (5, 2)
        The detected landmarks mapped into the output crop; for a centre-crop fallback the
        template landmarks (an approximation).
    found : bool

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a readable image (message names the file).
    NoFaceError
        With ``fallback=None``: ``"no face found in <path>"`` (a ``ValueError`` subclass).
    """
    bgr = read_image(path)
    aligned, landmarks, found = detect_and_align(bgr, size, detector, fallback, pick,
                                                 name=os.fspath(path),
                                                 center_fraction=center_fraction)
    return cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB), landmarks, found
