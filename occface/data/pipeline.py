"""The ``tf.data`` training pipeline: :func:`training_dataset` assembles batches from a training
source (:mod:`occface.data.sources`: folders / TFRecords / RecordIO), decoded
(:mod:`occface.data.decode`), synthetically occluded (:class:`occface.data.occlusion.OcclusionTF`)
and augmented (:mod:`occface.data.augment`). Evaluation batches are in
:mod:`occface.data.eval_datasets`.

Design (so that ``tf.train.Checkpoint(iterator=iter(ds))`` resumes exactly):

- file lists and RecordIO offsets are shuffled with ``tf.random.experimental.index_shuffle`` on an
  element counter (a full per-epoch permutation with no shuffle buffer to store);
- TFRecord shards are shuffled at shard level plus a (small) shuffle buffer of serialized records;
- every random augmentation / occlusion is a stateless op seeded with ``[seed, element index]``;
- corrupt, truncated or non-image files fail to decode and are dropped (``ignore_errors``); their
  number so far is available per batch with ``with_skip_count=True``.

Images come out as ``float32`` in ``[0, 255]`` RGB (the package convention; models normalise).
"""

import numpy as np
import tensorflow as tf

from occface.data.augment import apply_cutout, augment_image
from occface.data.decode import decode_image
from occface.data.sources import RecordIOSource, TFRecordSource, open_source
from occface.data.tfrecord import parse_example

AUTOTUNE = tf.data.AUTOTUNE


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

    if isinstance(src, TFRecordSource):
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
        if src.label_remap is not None:
            remap = src.label_remap

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
        if isinstance(src, RecordIOSource):
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
