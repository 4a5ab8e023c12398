"""ID-GAN training data: augmented faces with hole masks, clean faces, faces with landmarks.

A training batch is ``(truth float32 (B, S, S, 3) in [0, 255], labels int32 (B,), masks float32
(B, S, S, 1))``: :func:`occface.data.training_dataset` (flip, rotation ±15°, shift) on the
training identities (:func:`occface.train.data.training_identities`, shared with the
recognizer: disjoint from the held-out LFW folds), plus hole masks drawn per image by
:func:`hole_mask_fn` (default: one 48×48 block at a random position on
128×128 faces, i.e. ``0.375·S``; other kinds via :class:`occface.data.OcclusionTF`). The masks are
drawn with stateless RNG from ``(seed, index of the image in the stream)``, so a resumed run sees
the same holes.

Also here: the clean faces of the identity centroids (:func:`centroid_data`,
:func:`take_batches`) and the faces with landmarks that train the default face parser
(:func:`load_faces_with_landmarks`).
"""

import csv
import pathlib

import numpy as np
import tensorflow as tf

from occface.data.folders import IMAGE_EXTENSIONS


def hole_mask_fn(config):
    """A stateless drawer of one hole mask per image.

    One of ``config.hole_kinds`` is chosen uniformly per image: ``"block"`` is a square of side
    ``config.hole_size`` (0 = ``round(0.375·S)``, 48 at 128 as in the paper) at a uniformly random
    position inside the image; the other kinds are the fixed-position masks of
    :class:`occface.data.OcclusionTF` on the alignment template.

    Parameters
    ----------
    config : IDGANConfig
        Uses ``image_size`` (S), ``hole_size`` and ``hole_kinds``.

    Returns
    -------
    callable
        ``fn(seed int64 (2,)) -> float32 (S, S, 1)``, 1 = hole; the same seed gives the same mask.
    """
    from occface.data.occlusion import OcclusionTF
    size = int(config.image_size)
    side = int(config.hole_size) or int(round(0.375 * size))
    kinds = tuple(config.hole_kinds)
    others = tuple(k for k in kinds if k != "block")
    occ = OcclusionTF(others, size) if others else None
    rows = tf.range(size)[:, None]
    cols = tf.range(size)[None, :]

    def block(seed):
        pos = tf.random.stateless_uniform([2], seed, 0, size - side + 1, dtype=tf.int32)
        inside = ((rows >= pos[0]) & (rows < pos[0] + side) & (cols >= pos[1])
                  & (cols < pos[1] + side))
        return tf.cast(inside, tf.float32)[..., None]

    def fn(seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        if occ is None:
            return block(seeds[0])
        if "block" not in kinds:
            return occ(tf.zeros([size, size, 3]), seeds[1])[1]
        choice = tf.random.stateless_uniform([], seeds[2], 0, len(kinds), dtype=tf.int32)
        return tf.cond(tf.equal(choice, kinds.index("block")), lambda: block(seeds[0]),
                       lambda: occ(tf.zeros([size, size, 3]), seeds[1])[1])
    return fn


def add_hole_masks(dataset, config, seed):
    """Map ``(images, labels)`` batches to ``(images, labels, masks)`` with fresh hole masks.

    Each image's mask comes from :func:`hole_mask_fn` with the stateless seed ``(seed, index of
    the image in the stream)``, so it is reproducible and checkpoint-safe. The images stay
    un-occluded (they are the ground truth; the generator ignores the hole's content anyway).

    Parameters
    ----------
    dataset : tf.data.Dataset
        Batches ``(images (b, S, S, 3), labels (b,), ...)`` with a static batch dimension ``b``
        (``drop_remainder=True``); entries after the labels are dropped.
    config : IDGANConfig
        The hole settings (see :func:`hole_mask_fn`).
    seed : int
        First half of every mask's stateless seed.

    Returns
    -------
    tf.data.Dataset
        ``(images (b, S, S, 3), labels int32 (b,), masks float32 (b, S, S, 1))``.
    """
    draw = hole_mask_fn(config)
    batch = int(dataset.element_spec[0].shape[0])

    def add(k, element):
        images, labels = element[0], element[1]
        base = tf.cast(k, tf.int64) * batch
        seeds = tf.stack([tf.fill([batch], tf.constant(seed, tf.int64)),
                          base + tf.range(batch, dtype=tf.int64)], axis=1)
        masks = tf.map_fn(draw, seeds, fn_output_signature=tf.TensorSpec(
            [config.image_size, config.image_size, 1], tf.float32))
        return images, tf.cast(labels, tf.int32), masks
    return dataset.enumerate().map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def training_data(config, per_worker_batch, seed, identities=None):
    """This worker's infinite stream of augmented training faces with hole masks.

    Parameters
    ----------
    config : IDGANConfig
        Uses ``data_dir``, ``image_size``, ``augment`` and the hole settings.
    per_worker_batch : int
        Batch size ``b`` of this worker (global batch / workers).
    seed : int
        Seed of the augmentation; the hole masks use ``seed + 1``.
    identities : collection of str, optional
        Keep only these identities (:func:`occface.train.data.training_identities`).

    Returns
    -------
    dataset : tf.data.Dataset
        ``(truth float32 (b, S, S, 3) in [0, 255], labels int32 (b,), masks float32
        (b, S, S, 1))``, see :func:`add_hole_masks`.
    num_classes : int
        Number of identity labels.
    """
    import occface.data as occdata
    if not config.data_dir:
        raise ValueError("no training data: set data_dir")
    if not pathlib.Path(config.data_dir).exists():
        raise FileNotFoundError(f"training data not found: {config.data_dir}")
    dataset, num_classes = occdata.training_dataset(
        config.data_dir, per_worker_batch, config.image_size, augment=config.augment, seed=seed,
        identities=identities)
    if not num_classes:
        raise ValueError(f"empty training set: no identities found in {config.data_dir}")
    return add_hole_masks(dataset, config, seed + 1), int(num_classes)


def centroid_data(config, identities=None, batch_size=64):
    """Clean (un-augmented, single pass) training faces for the identity centroids.

    Parameters
    ----------
    config : IDGANConfig
        Uses ``data_dir``, ``image_size`` and ``seed``.
    identities : collection of str, optional
        Keep only these identities (the training ones).
    batch_size : int

    Returns
    -------
    tf.data.Dataset
        ``(images (≤ batch_size, S, S, 3) in [0, 255], labels (≤ batch_size,))``, one pass.
    """
    import occface.data as occdata
    dataset, _ = occdata.training_dataset(
        config.data_dir, batch_size, config.image_size, augment=False, seed=config.seed,
        identities=identities, repeat=False, drop_remainder=False)
    return dataset


def take_batches(dataset, n):
    """The first ``n`` batches of a stream, as numpy pairs (a fixed set for the centroids).

    Parameters
    ----------
    dataset : iterable of tuples
        Batches whose first two entries are ``images (b, S, S, 3)`` and ``labels (b,)``
        (e.g. ``(truth, labels, masks)`` of :func:`training_data`; the rest is dropped).
    n : int

    Returns
    -------
    list of (images, labels) numpy pairs, at most ``n``.
    """
    out = []
    for i, element in enumerate(dataset):
        if i >= int(n):
            break
        out.append((np.asarray(element[0]), np.asarray(element[1])))
    return out


def load_faces_with_landmarks(data_dir, image_size, identities=None, max_images=None, seed=0):
    """Aligned faces and their five landmarks from a prepared image tree (for the parser).

    Uses ``records.csv`` of ``tools/prepare_dataset.py`` (detected landmarks mapped into the
    aligned crop; faces without a detection are skipped). Without it, every image of the
    identity-per-folder tree is used with the alignment template's landmarks.

    Parameters
    ----------
    data_dir : path
    image_size : int
        Faces are resized to this side (landmarks scaled accordingly).
    identities : collection of str, optional
        Keep only these identity folders.
    max_images : int, optional
        Random subset of at most this many faces (``seed``).

    Returns
    -------
    images : (N, S, S, 3) uint8
    landmarks : (N, 5, 2) float32
    """
    import cv2
    from occface.data.alignment import read_image, template_landmarks
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"face directory not found: {data_dir}")
    keep = None if identities is None else set(identities)
    entries = []  # (path, landmarks or None)
    records = data_dir / "records.csv"
    if records.is_file():
        with open(records, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("found", "1") != "1" or not row.get("file"):
                    continue
                ident = pathlib.PurePosixPath(row["file"]).parts[0]
                if keep is not None and ident not in keep:
                    continue
                pts = np.array([[float(row[f"x{k}"]), float(row[f"y{k}"])] for k in range(5)])
                entries.append((data_dir / row["file"], pts))
    else:
        for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
            if keep is not None and folder.name not in keep:
                continue
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() in IMAGE_EXTENSIONS:
                    entries.append((p, None))
    if not entries:
        raise ValueError(f"no faces found in {data_dir}")
    rng = np.random.default_rng(seed)
    if max_images is not None and len(entries) > max_images:
        picked = rng.choice(len(entries), size=int(max_images), replace=False)
        entries = [entries[i] for i in sorted(picked)]
    images, landmarks = [], []
    for path, pts in entries:
        bgr = read_image(path)
        h, w = bgr.shape[:2]
        if pts is None:
            pts = template_landmarks((h, w)).astype(np.float64)
        if (h, w) != (image_size, image_size):
            bgr = cv2.resize(bgr, (image_size, image_size), interpolation=cv2.INTER_AREA)
            pts = pts * np.array([image_size / w, image_size / h])
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        landmarks.append(pts)
    return np.stack(images), np.stack(landmarks).astype(np.float32)
