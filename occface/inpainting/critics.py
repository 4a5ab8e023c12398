"""Global and local critics of ID-GAN, and cropping of the local patch around the hole.

The paper (following GLCIC) uses a global discriminator on the whole face and a local one on a
patch centred on the hole, each a stack of strided convolutions followed by a fully connected
layer. ID-GAN trains them WGAN-GP style, so here they are *critics*: the last layer is a linear
``Dense(1)`` (no sigmoid) and there is no batch normalisation (it would couple the samples that
the gradient penalty treats independently); ``norm="layer"`` uses per-sample layer normalisation
over (H, W, C) as recommended by Gulrajani et al. (2017), ``norm="none"`` none.

Architecture: ``stages`` blocks, each ``convs_per_stage − 1`` 3×3 stride-1 convolutions and one
5×5 stride-2 convolution, channels ``width·2^i`` capped at ``max_width``, LeakyReLU(0.2); then
flatten + ``Dense(1)``. The number of stages defaults to halving until the map is ≤ 4 pixels, so a
128-pixel global critic has 5 stages × 2 = 10 convolutions + FC, and a 64-pixel local critic 8 + FC.
"""

import math

import keras
from keras import layers, ops


def _default_stages(size, min_size=4):
    stages = 0
    while size > min_size:
        size = math.ceil(size / 2)
        stages += 1
    return max(stages, 1)


def _build_critic(size, width, max_width, stages, convs_per_stage, norm, name):
    size = int(size)
    if size < 4:
        raise ValueError(f"critic input size must be >= 4, got {size}")
    if norm not in ("layer", "none"):
        raise ValueError(f"norm must be 'layer' or 'none', got {norm!r}")
    if convs_per_stage < 1:
        raise ValueError(f"convs_per_stage must be >= 1, got {convs_per_stage}")
    stages = _default_stages(size) if stages is None else int(stages)
    image = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(image)
    channels = int(width)
    for stage in range(stages):
        for j in range(convs_per_stage - 1):
            x = layers.Conv2D(channels, 3, padding="same", name=f"s{stage}_conv{j}")(x)
            if norm == "layer" and stage > 0:
                x = layers.LayerNormalization(axis=(1, 2, 3), name=f"s{stage}_ln{j}")(x)
            x = layers.LeakyReLU(0.2, name=f"s{stage}_act{j}")(x)
        x = layers.Conv2D(channels, 5, strides=2, padding="same", name=f"s{stage}_down")(x)
        if norm == "layer" and stage > 0:
            x = layers.LayerNormalization(axis=(1, 2, 3), name=f"s{stage}_ln_down")(x)
        x = layers.LeakyReLU(0.2, name=f"s{stage}_act_down")(x)
        channels = min(2 * channels, int(max_width))
    x = layers.Flatten(name="flatten")(x)
    score = layers.Dense(1, name="score")(x)
    return keras.Model(image, score, name=name)


def build_global_critic(image_size=128, width=32, max_width=256, stages=None, convs_per_stage=2,
                        norm="layer", name="global_critic"):
    """WGAN critic on the whole (completed or real) face.

    Parameters
    ----------
    image_size : int
        Side S of the input faces.
    width, max_width : int
        Channels of the first stage; cap of the doubling channel count.
    stages : int, optional
        Number of stride-2 stages; default halves until the map is ≤ 4 pixels (5 at 128).
    convs_per_stage : int
        Convolutions per stage (the last one strided); 2 gives the paper's 10 convs at 128.
    norm : {"layer", "none"}
        Per-sample layer normalisation (not on the first stage) or none. Never batch norm.
    name : str
        Model name.

    Returns
    -------
    keras.Model
        (N, S, S, 3) float images in [0, 255] -> (N, 1) unbounded scores (higher = more real).
    """
    return _build_critic(image_size, width, max_width, stages, convs_per_stage, norm, name)


def build_local_critic(patch_size=64, width=32, max_width=256, stages=None, convs_per_stage=2,
                       norm="layer", name="local_critic"):
    """WGAN critic on the patch around the hole (see :func:`crop_hole_patch`).

    Parameters are those of :func:`build_global_critic` with ``patch_size`` P as input side.

    Returns
    -------
    keras.Model
        (N, P, P, 3) float patches in [0, 255] -> (N, 1) unbounded scores.
    """
    return _build_critic(patch_size, width, max_width, stages, convs_per_stage, norm, name)


def hole_boxes(mask):
    """Bounding box of the hole of each mask.

    Parameters
    ----------
    mask : (N, H, W, 1) or (N, H, W) tensor
        1 (or > 0.5) = hole.

    Returns
    -------
    (N, 4) int32 tensor
        ``[y0, x0, y1, x1]`` with exclusive ends. An empty mask gives the zero-size box at the
        image centre, so the local patch falls back to the centre of the face.
    """
    mask = ops.convert_to_tensor(mask)
    if len(mask.shape) == 4:
        mask = mask[..., 0]
    if len(mask.shape) != 3:
        raise ValueError(f"mask must be (N, H, W, 1) or (N, H, W), got shape {mask.shape}")
    hole = ops.cast(mask > 0.5, "int32")
    height, width = mask.shape[1], mask.shape[2]
    rows = ops.max(hole, axis=2)  # (N, H)
    cols = ops.max(hole, axis=1)  # (N, W)
    empty = ops.equal(ops.max(rows, axis=1), 0)
    y0 = ops.cast(ops.argmax(rows, axis=1), "int32")
    y1 = height - ops.cast(ops.argmax(ops.flip(rows, axis=1), axis=1), "int32")
    x0 = ops.cast(ops.argmax(cols, axis=1), "int32")
    x1 = width - ops.cast(ops.argmax(ops.flip(cols, axis=1), axis=1), "int32")
    cy, cx = height // 2, width // 2
    y0 = ops.where(empty, cy, y0)
    y1 = ops.where(empty, cy, y1)
    x0 = ops.where(empty, cx, x0)
    x1 = ops.where(empty, cx, x1)
    return ops.stack([y0, x0, y1, x1], axis=1)


def crop_hole_patch(images, boxes, patch_size):
    """Crop the ``patch_size`` square centred on each box, shifted to lie inside the image.

    Pure gather (no interpolation), so pixels are copied exactly and gradients flow to
    ``images``. A hole larger than the patch is cropped around its centre.

    Parameters
    ----------
    images : (N, H, W, C) float tensor
    boxes : (N, 4) int tensor
        ``[y0, x0, y1, x1]`` (exclusive ends), e.g. from :func:`hole_boxes`.
    patch_size : int
        Side P of the square patch, ``P <= min(H, W)``.

    Returns
    -------
    (N, P, P, C) tensor; ``patch[n, i, j] = images[n, top_n + i, left_n + j]``.
    """
    images = ops.convert_to_tensor(images)
    _, height, width, channels = images.shape
    patch_size = int(patch_size)
    if patch_size > height or patch_size > width:
        raise ValueError(f"patch_size {patch_size} exceeds the image size {height}x{width}")
    boxes = ops.cast(boxes, "int32")
    top, left = patch_box_origin(boxes, patch_size, height, width)
    n = ops.shape(images)[0]
    offsets = ops.arange(patch_size, dtype="int32")
    rows = top[:, None] + offsets[None, :]  # (N, P)
    cols = left[:, None] + offsets[None, :]  # (N, P)
    base = ops.arange(n, dtype="int32") * (height * width)
    flat_index = (base[:, None, None] + rows[:, :, None] * width + cols[:, None, :])  # (N, P, P)
    flat = ops.reshape(images, (-1, channels))
    return ops.take(flat, flat_index, axis=0)


def patch_box_origin(boxes, patch_size, height, width):
    """Top-left corner ``(top, left)``, each (N,) int32, of the patch used by crop_hole_patch."""
    boxes = ops.cast(boxes, "int32")
    cy = (boxes[:, 0] + boxes[:, 2]) // 2
    cx = (boxes[:, 1] + boxes[:, 3]) // 2
    top = ops.clip(cy - patch_size // 2, 0, height - patch_size)
    left = ops.clip(cx - patch_size // 2, 0, width - patch_size)
    return top, left
