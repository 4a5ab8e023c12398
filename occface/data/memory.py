"""In-memory training source: a small aligned face set decoded once, kept as ``uint8`` in RAM.

For sets that fit in memory (LFW at 64 px: ~12k faces, 150 MB) decoding and resizing every image
on every epoch costs the training step about 40 % of its throughput on 2 cores
(``benchmarks/train_throughput.py``). :class:`InMemoryImages` decodes each file once, at the
training size, with OpenCV in a thread pool; :func:`occface.data.training_dataset` with
``in_memory=True`` then gathers ``uint8`` rows by the same shuffled element counter and applies
the same stateless augmentation and occlusion, so a run is as reproducible and resumable as with
the streaming source.
"""

import concurrent.futures
import logging
import os

import numpy as np

log = logging.getLogger(__name__)


def _decode_resized(path, size):
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    h, w = size
    if bgr.shape[:2] != (h, w):
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    return bgr[:, :, ::-1]


def decode_all(paths, size, num_threads=None):
    """Decode image files to one ``uint8`` array at ``size``.

    Parameters
    ----------
    paths : sequence of str
    size : (int, int)
        ``(h, w)``; images of another size are resized with area interpolation.
    num_threads : int, optional
        Decoder threads (OpenCV releases the GIL); default: the CPU count.

    Returns
    -------
    images : np.ndarray uint8 (M, h, w, 3)
        RGB faces of the files that decoded, in the order of ``paths``.
    ok : np.ndarray bool (N,)
        Which of ``paths`` decoded (``M = ok.sum()``).
    """
    h, w = size
    images = np.zeros((len(paths), h, w, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    with concurrent.futures.ThreadPoolExecutor(num_threads or os.cpu_count() or 1) as pool:
        for i, face in enumerate(pool.map(lambda p: _decode_resized(p, size), paths,
                                          chunksize=64)):
            if face is not None:
                images[i] = face
                ok[i] = True
    return images[ok], ok


class InMemoryImages:
    """The decoded faces and labels of an image-folder training source.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    labels : sequence of int
        Their labels ``0 .. num_classes - 1``.
    size : (int, int)
        Decoding size ``(h, w)``.
    classes : list of str, optional

    Attributes
    ----------
    images : np.ndarray uint8 (N, h, w, 3)
    labels : np.ndarray int32 (N,)
    num_images : int
        ``N``, the faces that decoded.
    skipped : int
        Files that did not decode (left out; reported as the pipeline's skip count).
    """

    kind = "in-memory"

    def __init__(self, paths, labels, size, classes=None):
        import tensorflow as tf
        paths = [str(p) for p in paths]
        labels = np.asarray(labels, np.int32)
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        images, ok = decode_all(paths, size)
        self.skipped = int((~ok).sum())
        if self.skipped:
            log.warning("in-memory source: %d of %d images did not decode and are left out",
                        self.skipped, len(paths))
        if not ok.any():
            raise ValueError(f"none of the {len(paths)} training images decodes")
        self.images = images
        self.labels = labels[ok]
        self.classes = classes
        self.num_classes = len(classes) if classes is not None else int(labels.max()) + 1
        self.num_images = len(self.images)
        self._images = tf.constant(self.images)
        self._labels = tf.constant(self.labels)

    @classmethod
    def from_source(cls, source, size):
        """Decode a :class:`occface.data.sources.FileListSource` (image folders)."""
        paths = getattr(source, "paths", None)
        if paths is None:
            raise ValueError(f"in_memory needs an image-folder training source, not a "
                             f"{source.kind} source")
        return cls(paths, source.labels, size, classes=source.classes)

    def element_fn(self):
        """``fn(i) -> (uint8 (h, w, 3), int32 label)`` for an ``int64`` element index."""
        def fn(i):
            return self._images[i], self._labels[i]
        return fn
