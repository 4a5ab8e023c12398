"""``tf.data`` input pipelines: training batches from folders / TFRecords / RecordIO, and
evaluation batches for pairs and templates.

Design (so that ``tf.train.Checkpoint(iterator=iter(ds))`` resumes exactly):

- file lists and RecordIO offsets are shuffled with ``tf.random.experimental.index_shuffle`` on an
  element counter (a full per-epoch permutation with no shuffle buffer to store);
- TFRecord shards are shuffled at shard level plus a (small) shuffle buffer of serialized records;
- every random augmentation / occlusion is a stateless op seeded with ``[seed, element index]``;
- corrupt, truncated or non-image files fail to decode and are dropped (``ignore_errors``); their
  number so far is available per batch with ``with_skip_count=True``.

Images come out as ``float32`` in ``[0, 255]`` RGB (the package convention; models normalise).
"""

import csv
import logging
import os
import pathlib

import numpy as np
import tensorflow as tf

from occface.data.tfrecord import IMAGES_FORMAT, MANIFEST, TFRECORD_FORMAT, parse_example, \
    read_manifest

log = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


# ---------------------------------------------------------------------------------------------
# sources


class _Source:
    """What a training source provides: ``num_classes``, ``classes`` and an element dataset of
    ``(encoded bytes, label)`` (before decoding) built from a counter dataset."""

    kind = ""
    num_classes = 0
    classes = None
    num_images = 0


def _identity_filter(classes, identities):
    """(keep indices in old label space, remap old->new label array) for an identities list."""
    if identities is None:
        return None, None
    index = {str(c): i for i, c in enumerate(classes)}
    keep = []
    for ident in identities:
        key = str(ident)
        if key not in index:
            raise ValueError(f"identity {ident!r} not in the source's {len(classes)} classes")
        keep.append(index[key])
    keep = sorted(set(keep))
    remap = np.full(len(classes), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    return keep, remap


class _FileListSource(_Source):
    """Identity-per-folder image tree (scanned) or an occface image tree (``records.csv``)."""

    def __init__(self, root, identities=None):
        root = pathlib.Path(root)
        manifest_path = root / MANIFEST
        paths, labels = [], []
        if manifest_path.is_file() and read_manifest(manifest_path)["format"] == IMAGES_FORMAT:
            manifest = read_manifest(manifest_path)
            classes = list(manifest["classes"])
            with open(root / manifest.get("records", "records.csv"), newline="") as f:
                for row in csv.DictReader(f):
                    paths.append(str(root / row["file"]))
                    labels.append(int(row["label"]))
            self.kind = "occface-images"
        else:
            classes = []
            for entry in sorted(os.scandir(root), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                files = []
                for dirpath, dirnames, filenames in os.walk(entry.path):
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    for name in sorted(filenames):
                        if name.startswith("."):
                            continue
                        files.append(os.path.join(dirpath, name))
                if files:
                    label = len(classes)
                    classes.append(entry.name)
                    paths.extend(files)
                    labels.extend([label] * len(files))
            self.kind = "folder"
        if not paths:
            raise ValueError(f"no images found in {root} (expected <root>/<identity>/<image>)")
        keep, remap = _identity_filter(classes, identities)
        labels = np.asarray(labels, np.int64)
        if keep is not None:
            sel = np.isin(labels, keep)
            paths = [p for p, s in zip(paths, sel) if s]
            labels = remap[labels[sel]]
            classes = [classes[i] for i in keep]
            if not paths:
                raise ValueError("no images left after the identities filter")
        self.classes = classes
        self.num_classes = len(classes)
        self.num_images = len(paths)
        self.paths, self.labels = paths, labels
        self._paths = tf.constant(paths)
        self._labels = tf.constant(labels, tf.int32)

    def element_fn(self):
        def fn(i):
            return tf.io.read_file(self._paths[i]), self._labels[i]
        return fn


class _RecordIOSource(_Source):
    """insightface ``train.rec`` + ``train.idx`` (read with ``os.pread`` in a ``py_function``)."""

    kind = "recordio"

    def __init__(self, path, identities=None):
        from occface.data.recordio import InsightFaceRecord
        self.rec = InsightFaceRecord(path)
        keys = self.rec.image_keys
        self.num_classes = self.rec.num_classes
        self.classes = [str(i) for i in range(self.num_classes)]
        keep, remap = _identity_filter(self.classes, identities)
        self._remap = None
        if keep is not None:
            if self.rec.identity_ranges is not None:
                keys = np.concatenate([np.arange(*self.rec.identity_ranges[k], dtype=np.int64)
                                       for k in keep if k in self.rec.identity_ranges])
            self._remap = tf.constant(remap)
            self.classes = [self.classes[i] for i in keep]
            self.num_classes = len(keep)
        self.num_images = len(keys)
        offsets = np.asarray([self.rec.reader.index[int(k)] for k in keys], np.int64)
        self._offsets = tf.constant(offsets)

    def element_fn(self):
        reader = self.rec.reader

        def read(offset):
            from occface.data.recordio import unpack_irheader
            try:
                record, _ = reader.read_at(int(offset))
                header, body = unpack_irheader(record)
                label = header.label if header.flag == 0 else header.label[0]
                return body, np.int64(label)
            except (ValueError, OSError) as e:
                log.warning("%s: bad record at byte %d: %s", reader.rec_path, int(offset), e)
                return b"", np.int64(-1)

        def fn(i):
            data, label = tf.numpy_function(read, [self._offsets[i]], [tf.string, tf.int64],
                                            stateful=False)
            data.set_shape([])
            label.set_shape([])
            return data, label
        return fn

    def remap(self, data, label):
        if self._remap is None:
            return data, tf.cast(label, tf.int32)
        safe = tf.clip_by_value(label, 0, tf.cast(tf.shape(self._remap)[0] - 1, tf.int64))
        new = tf.where(label >= 0, tf.gather(self._remap, safe), -1)
        return data, tf.cast(new, tf.int32)


class _TFRecordSource(_Source):
    kind = "tfrecord"

    def __init__(self, path, identities=None):
        manifest = read_manifest(path)
        if manifest["format"] != TFRECORD_FORMAT:
            raise ValueError(f"{path}: manifest format is {manifest['format']!r}, not TFRecord")
        base = pathlib.Path(manifest["_dir"])
        self.files = [str(base / s["file"]) for s in manifest["shards"] if s["count"]]
        missing = [f for f in self.files if not os.path.isfile(f)]
        if missing:
            raise FileNotFoundError(f"TFRecord shard(s) listed in the manifest are missing: "
                                    f"{missing[:3]}")
        self.classes = list(manifest["classes"])
        self.num_classes = len(self.classes)
        self.num_images = int(sum(s["count"] for s in manifest["shards"]))
        keep, remap = _identity_filter(self.classes, identities)
        self._remap = None
        if keep is not None:
            self._remap = tf.constant(remap)
            self.classes = [self.classes[i] for i in keep]
            self.num_classes = len(keep)


def open_source(source, identities=None):
    """Detect and open a training source (see :func:`training_dataset`)."""
    path = pathlib.Path(source)
    if not path.exists():
        raise FileNotFoundError(f"training source not found: {path}")
    if path.is_file():
        if path.suffix == ".rec":
            return _RecordIOSource(path, identities)
        if path.name.endswith(".json"):
            return _TFRecordSource(path, identities)
        raise ValueError(f"{path}: not a training source (expected a directory, a manifest.json "
                         f"or a train.rec)")
    if (path / MANIFEST).is_file():
        fmt = read_manifest(path)["format"]
        if fmt == TFRECORD_FORMAT:
            return _TFRecordSource(path, identities)
        return _FileListSource(path, identities)
    if (path / "train.rec").is_file():
        return _RecordIOSource(path / "train.rec", identities)
    return _FileListSource(path, identities)


# ---------------------------------------------------------------------------------------------
# decode and augment


def _cv2_decode(data):
    import cv2
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) else None
    if image is None:
        raise ValueError("not a decodable image")
    return image[:, :, ::-1].copy()


def decode_image(data, image_size):
    """Decode image bytes to ``float32 (h, w, 3)`` RGB in [0, 255], resized to ``image_size``
    (int or ``(h, w)``) when it differs.

    JPEG, PNG, GIF and BMP are decoded by TensorFlow; anything else (PGM/PPM, TIFF, WebP, ...)
    by OpenCV through ``tf.numpy_function``. Bytes that are no image raise ``InvalidArgument``
    (the training pipeline drops and counts such elements).
    """
    h, w = (image_size, image_size) if np.isscalar(image_size) else image_size
    head = tf.strings.substr(data, 0, 4)
    tf_format = (tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
                 | tf.equal(head, b"\x89PNG") | tf.equal(tf.strings.substr(head, 0, 3), b"GIF")
                 | tf.equal(tf.strings.substr(head, 0, 2), b"BM"))

    def with_tf():
        img = tf.io.decode_image(data, channels=3, expand_animations=False)
        img.set_shape([None, None, 3])
        return img

    def with_cv2():
        img = tf.numpy_function(_cv2_decode, [data], tf.uint8, stateful=False)
        img.set_shape([None, None, 3])
        return img
    image = tf.cond(tf_format, with_tf, with_cv2)
    shape = tf.shape(image)
    image = tf.cast(image, tf.float32)
    image = tf.cond(tf.logical_and(tf.equal(shape[0], h), tf.equal(shape[1], w)),
                    lambda: image,
                    lambda: tf.image.resize(image, [h, w], antialias=True))
    return tf.ensure_shape(image, [h, w, 3])


def _affine_params(seed, h, w, max_rotation, max_shift):
    """Projective transform (8 numbers, output -> input pixel coordinates) for a random rotation
    about the image centre by up to ``max_rotation`` degrees and a shift up to ``max_shift``
    (fraction of the side)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    angle = tf.random.stateless_uniform([], seeds[0], -1.0, 1.0) * (max_rotation * np.pi / 180)
    shift = tf.random.stateless_uniform([2], seeds[1], -1.0, 1.0) * max_shift
    dx, dy = shift[0] * w, shift[1] * h
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    c, s = tf.cos(angle), tf.sin(angle)
    # input = R(-angle) (output - centre - shift) + centre
    a0, a1 = c, s
    b0, b1 = -s, c
    a2 = cx - a0 * (cx + dx) - a1 * (cy + dy)
    b2 = cy - b0 * (cx + dx) - b1 * (cy + dy)
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def augment_image(image, seed, flip=True, max_rotation=15.0, max_shift=0.05,
                  fill_mode="REFLECT", mask=None):
    """Random horizontal flip, rotation (±``max_rotation`` degrees) and shift (±``max_shift`` of
    the side), all stateless from ``seed`` (int (2,)). ``image``: float32 (H, W, C).

    ``mask`` (H, W, 1), if given, gets the same geometric transform (nearest neighbour, zero fill)
    and the pair is returned.
    """
    seed = tf.cast(seed, tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    h, w = image.shape[0], image.shape[1]
    if flip:
        do_flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = tf.cond(do_flip, lambda: tf.reverse(image, [1]), lambda: image)
        if mask is not None:
            mask = tf.cond(do_flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    if max_rotation or max_shift:
        params = _affine_params(seeds[1], h, w, float(max_rotation), float(max_shift))[None]
        image = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=params, output_shape=[h, w], fill_value=0.0,
            interpolation="BILINEAR", fill_mode=fill_mode)[0]
        if mask is not None:
            mask = tf.raw_ops.ImageProjectiveTransformV3(
                images=mask[None], transforms=params, output_shape=[h, w], fill_value=0.0,
                interpolation="NEAREST", fill_mode="CONSTANT")[0]
    return image if mask is None else (image, mask)


def apply_cutout(image, seed, size, prob=1.0, fill=127.5):
    """Cutout (DeVries & Taylor 2017): a ``size`` x ``size`` square centred at a random pixel
    (clipped at the border) set to ``fill`` (127.5 = zero after the models' normalisation),
    applied with probability ``prob``. Stateless from ``seed``."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    h, w = image.shape[0], image.shape[1]
    centre = tf.random.stateless_uniform([2], seeds[0], 0, 1)
    cy = tf.cast(centre[0] * h, tf.int32)
    cx = tf.cast(centre[1] * w, tf.int32)
    rows = tf.range(h)[:, None]
    cols = tf.range(w)[None, :]
    half = size // 2
    box = ((rows >= cy - half) & (rows < cy - half + size) & (cols >= cx - half)
           & (cols < cx - half + size))
    box = box & (tf.random.stateless_uniform([], seeds[1]) < prob)
    return tf.where(box[..., None], tf.cast(fill, image.dtype), image)


def _make_occlusion(occlusion, size):
    from occface.data.occlusion import OcclusionTF
    if occlusion is None:
        return None
    if isinstance(occlusion, (str, list, tuple)):
        return OcclusionTF(occlusion, size)
    if isinstance(occlusion, dict):
        opts = dict(occlusion)
        kinds = opts.pop("kinds", opts.pop("kind", None))
        if kinds is None:
            raise ValueError("occlusion dict needs 'kind' or 'kinds'")
        return OcclusionTF(kinds, size, **opts)
    raise ValueError(f"occlusion must be None, a kind, a list of kinds or a dict, got "
                     f"{occlusion!r}")


def _make_cutout(spec):
    if spec is None or spec is False:
        return None
    if isinstance(spec, (int, np.integer)):
        return {"size": int(spec)}
    if isinstance(spec, dict) and "size" in spec:
        return dict(spec)
    raise ValueError(f"cutout must be None, a side in pixels or a dict with 'size', got {spec!r}")


# ---------------------------------------------------------------------------------------------
# training pipeline


def training_dataset(source, batch_size, image_size=112, *, augment=True, occlusion=None,
                     cutout=None, seed=0, identities=None, shuffle_buffer=None,
                     drop_remainder=True, repeat=True, max_rotation=15.0, max_shift=0.05,
                     flip=True, return_clean=False, return_masks=False, with_skip_count=False,
                     in_memory=False, num_parallel_calls=AUTOTUNE, prefetch=AUTOTUNE):
    """Streaming training batches.

    Parameters
    ----------
    source : str or path
        Auto-detected: a directory with an occface ``manifest.json`` (TFRecord shards, or an
        aligned image tree with ``records.csv``, both from ``tools/prepare_dataset.py``); a
        ``manifest.json`` itself; an insightface ``train.rec`` (with ``train.idx``, optional
        ``property``) or a directory holding one; otherwise an identity-per-folder image tree
        (``<source>/<identity>/<image>``; labels = sorted folder names).
    batch_size : int
    image_size : int or (int, int)
        Output size; images of another size are resized (pre-aligned faces are expected).
    augment : bool
        Random flip, rotation (±``max_rotation``°) and shift (±``max_shift`` of the side).
    occlusion : None, str, list of str or dict
        Synthetic occlusion (:class:`occface.data.occlusion.OcclusionTF`) applied before the
        geometric augmentation: a kind, kinds to choose from, or
        ``{"kinds": [...], "prob": 0.5, **options}``.
    cutout : None, int or dict
        Cutout square side in pixels, or ``{"size", "prob", "fill"}``; applied last.
    seed : int
        Fixes the order and every random choice.
    identities : list, optional
        Keep only these identities (folder names / manifest classes / RecordIO integer labels);
        labels are renumbered ``0 .. len(identities) - 1`` in sorted label order.
    shuffle_buffer : int, optional
        Record shuffle buffer for TFRecord sources (default 4096; folder and RecordIO sources
        are fully permuted each epoch without a buffer).
    drop_remainder, repeat : bool
    return_clean : bool
        Also yield the images before occlusion and Cutout, with the same flip/rotation/shift
        (inpainting targets).
    return_masks : bool
        Also yield the occlusion masks ``float32 (B, S, S, 1)`` (1 = occluded; after the same
        augmentation, nearest-neighbour; Cutout is not included).
    with_skip_count : bool
        Also yield an ``int64`` scalar: elements dropped so far because they did not decode.
    in_memory : bool
        Image-folder sources only: decode every image once at ``image_size`` and keep them as
        ``uint8`` in RAM (:class:`occface.data.memory.InMemoryImages`; ~12 KB per 64 px face);
        order, augmentation and occlusion are drawn as for streaming (undecodable files are left
        out at the start and reported by the skip count).

    Returns
    -------
    dataset : tf.data.Dataset
        Elements ``(images float32 (B, S, S, 3) in [0, 255], labels int32 (B,))``, plus
        ``clean``, ``masks`` and ``skipped`` when asked, in that order.
    num_classes : int
    """
    h, w = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    src = open_source(source, identities)
    memory = None
    if in_memory:
        from occface.data.memory import InMemoryImages
        memory = InMemoryImages.from_source(src, (h, w))
    occ = _make_occlusion(occlusion, (h, w))
    cut = _make_cutout(cutout)
    seed = int(seed)
    n = memory.num_images if memory is not None else src.num_images

    if isinstance(src, _TFRecordSource):
        files = tf.data.Dataset.from_tensor_slices(src.files)
        files = files.shuffle(len(src.files), seed=seed, reshuffle_each_iteration=True)
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(src.files)),
                                   num_parallel_calls=AUTOTUNE, deterministic=True)
        records = records.shuffle(shuffle_buffer or 4096, seed=seed + 1,
                                  reshuffle_each_iteration=True)
        if repeat:
            records = records.repeat()

        def parse(serialized):
            ex = parse_example(serialized)
            return ex["image"], tf.cast(ex["label"], tf.int32)
        ds = records.map(parse, num_parallel_calls=num_parallel_calls)
        if src._remap is not None:
            remap = src._remap

            def remap_tfr(data, label):
                return data, tf.cast(tf.gather(remap, label), tf.int32)

            def valid_tfr(data, label):
                return label >= 0
            ds = ds.map(remap_tfr).filter(valid_tfr)
        ds = ds.enumerate()
    else:
        counter = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(n)
        element = (memory or src).element_fn()
        perm_seed = tf.constant([seed, seed + 7919], tf.int64)

        def pick(k):
            epoch = k // n
            i = tf.random.experimental.index_shuffle(
                k % n, tf.stack([perm_seed[0] + epoch, perm_seed[1]]), tf.constant(n - 1,
                                                                                  tf.int64))
            data, label = element(i)
            return k, (data, label)
        ds = counter.map(pick, num_parallel_calls=num_parallel_calls, deterministic=True)
        if isinstance(src, _RecordIOSource):
            def remap_rec(k, e):
                return k, src.remap(*e)

            def valid_rec(k, e):
                return e[1] >= 0
            ds = ds.map(remap_rec).filter(valid_rec)

    def load(k, element):
        data, label = element
        image = decode_image(data, (h, w))
        return k, image, label

    def from_memory(k, element):
        return k, tf.cast(element[0], tf.float32), element[1]
    if memory is not None:
        ds = ds.map(from_memory)
    else:
        ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
        ds = ds.ignore_errors()
    ds = ds.enumerate()  # j: elements that decoded; k - j = elements dropped so far
    pre_skipped = memory.skipped if memory is not None else 0

    def transform(j, element):
        k, image, label = element
        s = tf.stack([tf.constant(seed, tf.int64), tf.cast(k, tf.int64)])
        seeds = tf.random.experimental.stateless_split(s, 3)
        mask = tf.zeros([h, w, 1], tf.float32)
        clean = image
        if occ is not None:
            image, mask = occ(image, seeds[0])
        if augment:
            both = tf.concat([image, clean], -1) if return_clean else image
            both, mask = augment_image(both, seeds[1], flip=flip, max_rotation=max_rotation,
                                       max_shift=max_shift, mask=mask)
            image, clean = (both[..., :3], both[..., 3:]) if return_clean else (both, clean)
        if cut is not None:
            image = apply_cutout(image, seeds[2], cut["size"], cut.get("prob", 1.0),
                                 cut.get("fill", 127.5))
        image = tf.clip_by_value(image, 0.0, 255.0)
        out = (image, label)
        if return_clean:
            out += (tf.clip_by_value(clean, 0.0, 255.0),)
        if return_masks:
            out += (mask,)
        if with_skip_count:
            out += (tf.cast(k - j, tf.int64) + pre_skipped,)
        return out
    ds = ds.map(transform, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if with_skip_count:
        def batch_skips(*b):
            return b[:-1] + (tf.reduce_max(b[-1]),)
        ds = ds.map(batch_skips)
    ds = ds.prefetch(prefetch)
    return ds, src.num_classes


# ---------------------------------------------------------------------------------------------
# evaluation pipelines


def image_dataset(paths, image_size=112, batch_size=64, flip=False,
                  num_parallel_calls=AUTOTUNE):
    """Images from files, in order, as ``float32 (B, S, S, 3)`` batches in [0, 255].

    For evaluation of pre-aligned faces (e.g. ``runs/lfw112``). A file that does not decode
    raises (evaluation must not silently drop images). With ``flip=True`` each element is
    ``(image, flipped image)``.
    """
    paths = [str(p) for p in paths]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image file(s) missing, e.g. {missing[0]}")
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string) if paths else
                                            tf.zeros([0], tf.string))

    def load(p):
        image = decode_image(tf.io.read_file(p), image_size)
        return (image, tf.reverse(image, [1])) if flip else image
    return ds.map(load, num_parallel_calls=num_parallel_calls,
                  deterministic=True).batch(batch_size).prefetch(AUTOTUNE)


def pairs_dataset(pairs, root, image_size=112, batch_size=64, ext=None):
    """Verification pairs as batches ``((images_a, images_b), issame)``.

    Parameters
    ----------
    pairs : LFWPairs
        From :func:`occface.data.read_lfw_pairs`.
    root : str or path
        Image tree laid out like ``lfw-deepfunneled`` (an aligned tree from
        ``tools/prepare_dataset.py``).
    """
    a, b = pairs.image_paths(root, ext=ext)
    da = image_dataset(a, image_size, batch_size).unbatch()
    db = image_dataset(b, image_size, batch_size).unbatch()
    labels = tf.data.Dataset.from_tensor_slices(np.asarray(pairs.issame, bool))
    return tf.data.Dataset.zip(((da, db), labels)).batch(batch_size).prefetch(AUTOTUNE)


def templates_dataset(templates, image_size=112, batch_size=64):
    """Images of face templates (sets of images per subject/template), for template matching.

    Parameters
    ----------
    templates : dict or list of (template_id, list of paths)

    Returns
    -------
    dataset : tf.data.Dataset
        Batches ``(images float32 (B, S, S, 3), template_index int32 (B,))``; aggregate the
        embeddings per template with e.g. ``tf.math.unsorted_segment_mean``.
    template_ids : list
        ``template_ids[template_index]``.
    """
    items = list(templates.items()) if isinstance(templates, dict) else list(templates)
    ids, paths, index = [], [], []
    for t, (tid, files) in enumerate(items):
        ids.append(tid)
        files = list(files)
        if not files:
            raise ValueError(f"template {tid!r} has no images")
        paths.extend(str(f) for f in files)
        index.extend([t] * len(files))
    images = image_dataset(paths, image_size, batch_size).unbatch()
    idx = tf.data.Dataset.from_tensor_slices(np.asarray(index, np.int32))
    return tf.data.Dataset.zip((images, idx)).batch(batch_size).prefetch(AUTOTUNE), ids
