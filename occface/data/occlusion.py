"""Synthetic occlusion of face images: the occluders of :mod:`occface.data.occluders` drawn and
composited onto faces, in numpy (:func:`occlude`) and in ``tf.data`` graphs (:class:`OcclusionTF`,
:func:`occlusion_map_fn`).

Kinds (``occlude(image, landmarks, kind, rng)``):

- ``"block"``: a random rectangle (ID-GAN uses 48x48 on 128x128 faces, the default side is
  ``0.375 * min(H, W)``), filled with black / grey / noise / a constant / another image;
- ``"mask"``: a MaskTheFace face-mask template (``occface/assets/masktheface``) warped onto the
  lower face by a homography from its six anchor points to six points estimated from the five
  landmarks (see :func:`occface.data.occluders.mask_anchor_points`);
- ``"sunglasses"``: a band over both eyes along the eye line;
- ``"upper"``, ``"lower"``, ``"left"``, ``"right"``: half the face (image halves by default,
  ``split="landmarks"`` splits between the eye line and the mouth / at the face's centre line).

Every kind returns the occluded image and the mask ``uint8 (H, W)`` with 1 = occluded; pixels with
mask 0 are never changed, pixels with mask 1 hold the occluder (hard edges, so the mask is exact).
Images are RGB (the package's convention). Randomness comes only from ``rng``, so a seed fixes
the result.
"""

import cv2
import numpy as np

from occface.choices import OCCLUSION_HALVES, OCCLUSION_KINDS
from occface.data.occluders import (DEFAULT_TEMPLATES, block_mask, half_mask, sunglasses_mask,
                                    warp_mask_template)

KINDS = OCCLUSION_KINDS
"""The occlusion kinds (:data:`occface.choices.OCCLUSION_KINDS`)."""


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _fill_values(image, mask, fill, rng, fill_image=None):
    """Values to write into the occluded pixels (same shape as ``image``)."""
    shape = image.shape
    if isinstance(fill, str):
        if fill == "black":
            return np.zeros(shape, image.dtype)
        if fill == "gray":
            return np.full(shape, 128, image.dtype)
        if fill == "white":
            return np.full(shape, 255, image.dtype)
        if fill == "noise":
            return rng.integers(0, 256, size=shape).astype(image.dtype)
        if fill == "image":
            if fill_image is None:
                raise ValueError("fill='image' needs fill_image=<array of the image's shape>")
            fill_image = np.asarray(fill_image)
            if fill_image.shape != shape:
                raise ValueError(f"fill_image has shape {fill_image.shape}, image {shape}")
            return fill_image.astype(image.dtype)
        raise ValueError(f"fill must be 'black', 'gray', 'white', 'noise', 'image' or a colour, "
                         f"got {fill!r}")
    colour = np.asarray(fill, dtype=np.float64)
    return np.broadcast_to(colour.astype(image.dtype), shape).copy()


def occlusion_mask_and_fill(image, landmarks, kind, rng=None, **options):
    """The mask and the occluder values of :func:`occlude` without compositing them."""
    image = np.asarray(image)
    rng = _rng(rng)
    h, w = image.shape[:2]
    fill = options.pop("fill", None)
    fill_image = options.pop("fill_image", None)
    if kind == "block":
        mask = block_mask(h, w, rng, options.pop("size", None))
        values = _fill_values(image, mask, fill or "black", rng, fill_image)
    elif kind == "mask":
        template = options.pop("template", "random")
        if template == "random":
            template = DEFAULT_TEMPLATES[int(rng.integers(len(DEFAULT_TEMPLATES)))]
        elif isinstance(template, (list, tuple)):
            template = template[int(rng.integers(len(template)))]
        rgb, mask = warp_mask_template(template, landmarks, image.shape)
        if fill is None:
            values = rgb if image.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            values = values.reshape(image.shape).astype(image.dtype)
        else:
            values = _fill_values(image, mask, fill, rng, fill_image)
    elif kind == "sunglasses":
        mask = sunglasses_mask(landmarks, image.shape, options.pop("width", 2.0),
                               options.pop("height", 0.6))
        values = _fill_values(image, mask, fill or "black", rng, fill_image)
    elif kind in OCCLUSION_HALVES:
        mask = half_mask(kind, landmarks, image.shape, options.pop("split", "center"))
        values = _fill_values(image, mask, fill or "black", rng, fill_image)
    else:
        raise ValueError(f"unknown occlusion kind {kind!r}; expected one of {KINDS}")
    if options:
        raise ValueError(f"unknown options for occlusion kind {kind!r}: {sorted(options)}")
    return mask, values


def occlude(image, landmarks, kind, rng=None, **options):
    """Occlude part of a face.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, 3) RGB or (H, W)
        uint8 (or float in [0, 255]).
    landmarks : array-like, shape (5, 2)
        Five landmarks in image pixels (for aligned faces: ``template_landmarks(size)``).
    kind : {"block", "mask", "sunglasses", "upper", "lower", "left", "right"}
    rng : np.random.Generator or int or None
        Source of randomness (block position/size, template choice, noise fill).
    **options
        ``fill``: ``"black"`` (default), ``"gray"``, ``"white"``, ``"noise"``, ``"image"``
        (with ``fill_image``) or an RGB colour; for ``"mask"`` the default is the template's
        own colours. ``"block"``: ``size`` (side, or ``(min, max)`` for independent height and
        width). ``"mask"``: ``template`` (a name from :func:`occface.data.mask_templates`, a
        list to choose from, or ``"random"`` = one of ``DEFAULT_TEMPLATES``). ``"sunglasses"``:
        ``width``, ``height`` in eye distances. Halves: ``split`` (``"center"`` or
        ``"landmarks"``).

    Returns
    -------
    occluded : np.ndarray, same shape and dtype as ``image``
    mask : np.ndarray, uint8, shape (H, W)
        1 = occluded. ``occluded == image`` where ``mask == 0``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W[, C]), got shape {image.shape}")
    mask, values = occlusion_mask_and_fill(image, landmarks, kind, rng, **options)
    sel = mask.astype(bool)
    out = image.copy()
    out[sel] = values[sel]
    return out, mask


# ---------------------------------------------------------------------------------------------
# tf.data version


class OcclusionTF:
    """Graph version of :func:`occlude` for aligned faces of one size (template landmarks).

    Fixed-position kinds (``mask`` templates, ``sunglasses``, halves) are computed once with the
    numpy occluders, so they match :func:`occlude` on ``template_landmarks(size)`` exactly;
    ``block`` is drawn with stateless TF random ops from a per-element seed.

    Parameters
    ----------
    kinds : str or sequence of str
        One kind, or several to choose from uniformly per image.
    image_size : int or (int, int)
        Image size ``(H, W)``.
    prob : float
        Probability that an image is occluded at all (the mask is all zeros otherwise).
    landmarks : array-like (5, 2), optional
        Defaults to ``template_landmarks(size)``.
    **options
        As for :func:`occlude`; ``fill`` may be ``"black"``, ``"gray"``, ``"white"``, ``"noise"``
        or a colour (``"image"`` is not available in graphs). For ``mask`` a list ``template``
        (or ``"random"``) is chosen from per image.
    """

    def __init__(self, kinds, image_size=112, prob=1.0, landmarks=None, **options):
        import tensorflow as tf
        from occface.data.alignment import size_hw, template_landmarks
        self.kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        for k in self.kinds:
            if k not in KINDS:
                raise ValueError(f"unknown occlusion kind {k!r}; expected one of {KINDS}")
        self.h, self.w = size_hw(image_size)
        self.prob = float(prob)
        lm = template_landmarks((self.h, self.w)) if landmarks is None else np.asarray(landmarks)
        options = dict(options)
        self.fill = options.pop("fill", None)
        if self.fill == "image":
            raise ValueError("fill='image' is not supported in the tf.data occlusion")
        block_size = options.pop("size", None)
        if block_size is None:
            block_size = int(round(0.375 * min(self.h, self.w)))
        self.block_range = ((int(block_size), int(block_size)) if np.isscalar(block_size)
                            else (int(block_size[0]), int(block_size[1])))
        if not (1 <= self.block_range[0] <= self.block_range[1] <= min(self.h, self.w)):
            raise ValueError(f"block size {block_size} does not fit a {self.h}x{self.w} image")
        template = options.pop("template", "random")
        templates = (DEFAULT_TEMPLATES if template == "random" else
                     (template,) if isinstance(template, str) else tuple(template))
        half_split = options.pop("split", "center")
        sg = (options.pop("width", 2.0), options.pop("height", 0.6))
        if options:
            raise ValueError(f"unknown occlusion options: {sorted(options)}")
        blank = np.zeros((self.h, self.w, 3), np.uint8)
        # Fixed (mask, rgb-values-or-None) per non-block "variant"; one row per variant.
        masks, values, self.variant_kind = [], [], []
        for k in self.kinds:
            if k == "mask":
                for t in templates:
                    rgb, m = warp_mask_template(t, lm, blank.shape)
                    masks.append(m)
                    values.append(rgb)
                    self.variant_kind.append(k)
            elif k == "sunglasses":
                masks.append(sunglasses_mask(lm, blank.shape, *sg))
                values.append(blank)
                self.variant_kind.append(k)
            elif k in OCCLUSION_HALVES:
                masks.append(half_mask(k, lm, blank.shape, half_split))
                values.append(blank)
                self.variant_kind.append(k)
            else:
                masks.append(np.zeros((self.h, self.w), np.uint8))
                values.append(blank)
                self.variant_kind.append(k)
        self.templates = templates
        self._masks = tf.constant(np.stack(masks).astype(np.float32)[..., None])
        self._values = tf.constant(np.stack(values).astype(np.float32))
        self._is_block = tf.constant([k == "block" for k in self.variant_kind])
        self._use_template_colours = tf.constant([k == "mask" and self.fill is None
                                                  for k in self.variant_kind])

    def _fill_tf(self, seed):
        import tensorflow as tf
        shape = (self.h, self.w, 3)
        fill = self.fill or "black"
        if fill == "noise":
            return tf.floor(tf.random.stateless_uniform(shape, seed, 0.0, 256.0))
        const = {"black": 0.0, "gray": 128.0, "white": 255.0}.get(fill) if isinstance(
            fill, str) else None
        if isinstance(fill, str) and const is None:
            raise ValueError(f"unsupported fill {fill!r}")
        if const is not None:
            return tf.fill(shape, const)
        return tf.broadcast_to(tf.constant(np.asarray(fill, np.float32)), shape)

    def __call__(self, image, seed):
        """Occlude one image.

        Parameters
        ----------
        image : tf.Tensor, float32 or uint8, shape (H, W, 3)
        seed : tf.Tensor, int, shape (2,)
            Stateless seed (e.g. ``[global_seed, element_index]``).

        Returns
        -------
        (tf.Tensor float32 (H, W, 3), tf.Tensor float32 (H, W, 1))
            Occluded image and mask (1 = occluded).
        """
        import tensorflow as tf
        image = tf.cast(image, tf.float32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
        n = len(self.variant_kind)
        variant = tf.random.stateless_uniform([], seeds[0], 0, n, dtype=tf.int32)
        lo, hi = self.block_range
        bh = tf.random.stateless_uniform([], seeds[1], lo, hi + 1, dtype=tf.int32)
        bw = tf.random.stateless_uniform([], tf.reverse(seeds[1], [0]), lo, hi + 1,
                                         dtype=tf.int32)
        pos = tf.random.stateless_uniform([2], seeds[2], 0.0, 1.0)
        y0 = tf.cast(tf.floor(pos[0] * tf.cast(self.h - bh + 1, tf.float32)), tf.int32)
        x0 = tf.cast(tf.floor(pos[1] * tf.cast(self.w - bw + 1, tf.float32)), tf.int32)
        rows = tf.range(self.h)[:, None]
        cols = tf.range(self.w)[None, :]
        block = tf.cast((rows >= y0) & (rows < y0 + bh) & (cols >= x0) & (cols < x0 + bw),
                        tf.float32)[..., None]
        mask = tf.where(self._is_block[variant], block, self._masks[variant])
        values = tf.where(self._use_template_colours[variant], self._values[variant],
                          self._fill_tf(seeds[3]))
        apply = tf.random.stateless_uniform([], seeds[4]) < self.prob
        mask = mask * tf.cast(apply, tf.float32)
        return image * (1.0 - mask) + values * mask, mask


def occlusion_map_fn(kind, image_size=112, seed=0, prob=1.0, landmarks=None, **options):
    """A ``tf.data`` map function occluding aligned faces.

    Use on an enumerated dataset of images (the element index seeds the randomness, so the
    result is deterministic and survives iterator checkpointing)::

        ds = ds.enumerate().map(occlusion_map_fn("block", image_size=128, seed=1, size=48))

    The function takes ``(index, image, *rest)`` or ``(index, (image, *rest))`` (what
    ``enumerate`` gives for tuple elements) with ``image`` ``(H, W, 3)`` and returns
    ``(occluded float32 (H, W, 3), mask float32 (H, W, 1), *rest)``. ``kind`` may be a list of
    kinds to choose from; other arguments as for :class:`OcclusionTF` (``size`` is the block
    side, as for :func:`occlude`).
    """
    import tensorflow as tf
    occ = OcclusionTF(kind, image_size, prob, landmarks, **options)
    seed = int(seed)

    def fn(index, *element):
        if len(element) == 1 and isinstance(element[0], (tuple, list)):
            element = tuple(element[0])  # ds.enumerate() of (image, label, ...) elements
        image, rest = element[0], element[1:]
        s = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
        occluded, mask = occ(image, s)
        return (occluded, mask) + tuple(rest)
    return fn
