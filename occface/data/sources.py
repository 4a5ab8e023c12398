"""Training sources of :func:`occface.data.training_dataset`: what a source path holds and how
its elements are read.

A source gives ``num_classes``, ``classes``, ``num_images`` and its elements, ``(encoded image
bytes, label)`` before decoding:

- :class:`FileListSource`: an identity-per-folder image tree (scanned) or an occface aligned image
  tree (``records.csv`` of ``tools/prepare_dataset.py``); element ``i`` reads file ``i``;
- :class:`RecordIOSource`: insightface ``train.rec`` + ``train.idx``; element ``i`` reads the
  record at offset ``i`` (``os.pread`` in a ``numpy_function``);
- :class:`TFRecordSource`: occface TFRecord shards listed by a ``manifest.json`` (read as
  shuffled shards by the pipeline).

:func:`open_source` detects the kind. An ``identities`` list keeps only those identities and
renumbers their labels ``0 .. len(identities) - 1`` in sorted label order.
"""

import csv
import logging
import os
import pathlib

import numpy as np
import tensorflow as tf

from occface.data.folders import identity_folders
from occface.data.tfrecord import IMAGES_FORMAT, MANIFEST, TFRECORD_FORMAT, read_manifest

log = logging.getLogger(__name__)


class Source:
    """What a training source provides.

    Attributes
    ----------
    kind : str
        ``"folder"``, ``"occface-images"``, ``"recordio"`` or ``"tfrecord"``.
    num_classes : int
    classes : list of str
        Identity names, ``classes[label]``.
    num_images : int

    File-list and RecordIO sources also have ``element_fn()``: ``fn(i) -> (encoded bytes tf.string
    (), label)`` for an ``int64`` element index ``i`` (the pipeline draws ``i`` from a shuffled
    counter).
    """

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


class FileListSource(Source):
    """Identity-per-folder image tree (scanned) or an occface image tree (``records.csv``).

    Parameters
    ----------
    root : str or path
    identities : list, optional
        Keep only these identities (folder names / manifest classes).

    Attributes
    ----------
    paths : list of str
        Image files, element ``i`` reads ``paths[i]``.
    labels : np.ndarray int64 (num_images,)
    """

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
            for label, (identity, files) in enumerate(identity_folders(root)):
                classes.append(identity)
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
        """``fn(i) -> (file bytes tf.string (), label tf.int32 ())``."""
        def fn(i):
            return tf.io.read_file(self._paths[i]), self._labels[i]
        return fn


class RecordIOSource(Source):
    """insightface ``train.rec`` + ``train.idx`` (read with ``os.pread`` in a ``py_function``).

    Parameters
    ----------
    path : str or path
        The ``train.rec`` file.
    identities : list, optional
        Keep only these integer labels.

    Attributes
    ----------
    label_remap : tf.Tensor int64 (original classes,) or None
        Original label -> kept label (-1 = dropped) when ``identities`` is given.
    """

    kind = "recordio"

    def __init__(self, path, identities=None):
        from occface.data.recordio import InsightFaceRecord
        self.rec = InsightFaceRecord(path)
        keys = self.rec.image_keys
        self.num_classes = self.rec.num_classes
        self.classes = [str(i) for i in range(self.num_classes)]
        keep, remap = _identity_filter(self.classes, identities)
        self.label_remap = None
        if keep is not None:
            if self.rec.identity_ranges is not None:
                keys = np.concatenate([np.arange(*self.rec.identity_ranges[k], dtype=np.int64)
                                       for k in keep if k in self.rec.identity_ranges])
            self.label_remap = tf.constant(remap)
            self.classes = [self.classes[i] for i in keep]
            self.num_classes = len(keep)
        self.num_images = len(keys)
        offsets = np.asarray([self.rec.reader.index[int(k)] for k in keys], np.int64)
        self._offsets = tf.constant(offsets)

    def element_fn(self):
        """``fn(i) -> (record body tf.string (), original label tf.int64 ())``; a record that
        does not read gives ``(b"", -1)`` (logged)."""
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
        """``(data, label int32)`` with the label renumbered by :attr:`label_remap` (-1 stays
        -1: the pipeline filters such elements out)."""
        if self.label_remap is None:
            return data, tf.cast(label, tf.int32)
        safe = tf.clip_by_value(label, 0, tf.cast(tf.shape(self.label_remap)[0] - 1, tf.int64))
        new = tf.where(label >= 0, tf.gather(self.label_remap, safe), -1)
        return data, tf.cast(new, tf.int32)


class TFRecordSource(Source):
    """occface TFRecord shards (:mod:`occface.data.tfrecord`) listed by a ``manifest.json``.

    Parameters
    ----------
    path : str or path
        The manifest or its directory.
    identities : list, optional
        Keep only these manifest classes.

    Attributes
    ----------
    files : list of str
        Shard files with at least one record.
    label_remap : tf.Tensor int64 (original classes,) or None
        Original label -> kept label (-1 = dropped) when ``identities`` is given.
    """

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
        self.label_remap = None
        if keep is not None:
            self.label_remap = tf.constant(remap)
            self.classes = [self.classes[i] for i in keep]
            self.num_classes = len(keep)


def open_source(source, identities=None):
    """Detect and open a training source.

    Parameters
    ----------
    source : str or path
        As for :func:`occface.data.training_dataset`.
    identities : list, optional

    Returns
    -------
    Source
        A :class:`FileListSource`, :class:`RecordIOSource` or :class:`TFRecordSource`.
    """
    path = pathlib.Path(source)
    if not path.exists():
        raise FileNotFoundError(f"training source not found: {path}")
    if path.is_file():
        if path.suffix == ".rec":
            return RecordIOSource(path, identities)
        if path.name.endswith(".json"):
            return TFRecordSource(path, identities)
        raise ValueError(f"{path}: not a training source (expected a directory, a manifest.json "
                         f"or a train.rec)")
    if (path / MANIFEST).is_file():
        fmt = read_manifest(path)["format"]
        if fmt == TFRECORD_FORMAT:
            return TFRecordSource(path, identities)
        return FileListSource(path, identities)
    if (path / "train.rec").is_file():
        return RecordIOSource(path / "train.rec", identities)
    return FileListSource(path, identities)
