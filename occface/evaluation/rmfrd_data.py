"""The RMFRD subset on disk: ``labels.csv`` read into probes and gallery, its crops into faces.

Masked images are the probes, unmasked ones the gallery (:func:`read_rmfrd`); crops are aligned
with YuNet, and a crop without a detection gets a fallback face (:func:`rmfrd_face_source`).

The RMFRD subset (``<data_root>/rmfrd_subset``, see its README) holds 224x224 tight face crops of
23 people: 362 wearing a real mask (``AFDB_masked_face_dataset/<id>/``) and 1,358 without
(``AFDB_face_dataset/<id>/``), listed in ``labels.csv`` (``path,identity,masked``). It is for
evaluation only: nothing here, the fallback included, is fitted or tuned on it. The protocol that
uses it is described in :mod:`~occface.evaluation.rmfrd`.
"""

import csv
import dataclasses
import pathlib

import numpy as np

from occface.evaluation.protocols import FaceSource

__all__ = ["FALLBACKS", "RmfrdSet", "read_rmfrd", "crop_fallback", "rmfrd_face_source"]

#: Faces for a crop in which YuNet finds no face: ``"resize"`` (the default) resizes the whole
#: crop to 112x112, ``"center"`` resizes its central 60 % (the LFW-oriented fallback of
#: :func:`occface.data.load_aligned_face`). Neither uses any statistic of RMFRD.
FALLBACKS = ("resize", "center")

_MASKED_DIR, _UNMASKED_DIR = "AFDB_masked_face_dataset", "AFDB_face_dataset"
_COLUMNS = ("path", "identity", "masked")


@dataclasses.dataclass
class RmfrdSet:
    """The masked probes and the unmasked gallery of an RMFRD tree, in ``labels.csv`` order.

    Attributes
    ----------
    root : pathlib.Path
    probe_keys : list of str, length Q
        Paths of the masked images.
    probe_labels : np.ndarray of str, shape (Q,)
    gallery_keys : list of str, length G
        Paths of the unmasked images.
    gallery_labels : np.ndarray of str, shape (G,)
    """
    root: pathlib.Path
    probe_keys: list
    probe_labels: np.ndarray
    gallery_keys: list
    gallery_labels: np.ndarray

    @property
    def n_identities(self):
        return int(np.unique(np.concatenate([self.probe_labels, self.gallery_labels])).size)


def read_rmfrd(data_dir):
    """Read ``labels.csv`` of an RMFRD tree into probes (masked) and gallery (unmasked).

    Parameters
    ----------
    data_dir : str or path
        Directory holding ``labels.csv`` (columns ``path,identity,masked``; ``path`` relative to
        ``data_dir``, ``masked`` 1 or 0).

    Returns
    -------
    RmfrdSet

    Raises
    ------
    FileNotFoundError
        ``data_dir``, ``labels.csv`` or a listed image is missing.
    ValueError
        A malformed ``labels.csv``; no masked or no unmasked rows; a masked identity with no
        unmasked image (identification is closed-set).
    """
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"RMFRD directory not found: {root}")
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"RMFRD labels not found: {labels}")
    sides = {True: ([], []), False: ([], [])}
    with open(labels, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if tuple(header) != _COLUMNS:
            raise ValueError(f"{labels}: expected the header 'path,identity,masked', got "
                             f"{','.join(header)!r}")
        for n, row in enumerate(reader, 2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise ValueError(f"{labels}:{n}: expected 3 fields (path,identity,masked), got "
                                 f"{len(row)}")
            path, identity, masked = (c.strip() for c in row)
            if masked not in ("0", "1"):
                raise ValueError(f"{labels}:{n}: masked must be 0 or 1, got {masked!r}")
            if not path or not identity:
                raise ValueError(f"{labels}:{n}: empty path or identity")
            image = root / path
            if not image.is_file():
                raise FileNotFoundError(f"{labels}:{n}: image not found: {image}")
            keys, ids = sides[masked == "1"]
            keys.append(str(image))
            ids.append(identity)
    if not sides[True][0]:
        raise ValueError(f"{labels}: no masked rows (masked=1): no probes to evaluate")
    if not sides[False][0]:
        raise ValueError(f"{labels}: no unmasked rows (masked=0): no gallery to match against")
    probe_labels, gallery_labels = np.array(sides[True][1]), np.array(sides[False][1])
    orphans = sorted(set(probe_labels) - set(gallery_labels))
    if orphans:
        raise ValueError(f"{labels}: masked identities without unmasked images: "
                         f"{', '.join(orphans)}")
    return RmfrdSet(root, sides[True][0], probe_labels, sides[False][0], gallery_labels)


class _CropFallback:
    """One of :data:`FALLBACKS` as a :class:`FaceSource` fallback (``name`` keys the cache)."""

    def __init__(self, kind, tag=""):
        if kind not in FALLBACKS:
            raise ValueError(f"unknown fallback {kind!r}; choose from {', '.join(FALLBACKS)}")
        self.kind = kind
        self.name = f"rmfrd-{kind}{tag}"

    def __call__(self, image, size):
        from occface.data import center_crop, template_landmarks
        face = center_crop(image, size, 1.0 if self.kind == "resize" else 0.6)
        return face, template_landmarks(size)


def crop_fallback(kind="resize"):
    """The :class:`~occface.evaluation.protocols.FaceSource` fallback named ``kind``.

    Parameters
    ----------
    kind : {"resize", "center"}
        See :data:`FALLBACKS`.

    Returns
    -------
    callable
        ``fallback(image (H, W, 3) uint8, size) -> (face (size, size, 3) uint8, template
        landmarks (5, 2))``.
    """
    return _CropFallback(kind)


def rmfrd_face_source(align="detect", fallback="resize", detector=None, cache_dir=None):
    """The :class:`~occface.evaluation.protocols.FaceSource` that turns RMFRD crops into faces.

    Parameters
    ----------
    align : {"detect", "aligned"}
        ``"detect"``: YuNet's five points aligned on the ArcFace 112x112 template, a crop without
        a detection gets the ``fallback`` face; ``"aligned"``: every crop taken as an aligned face
        (resized to 112x112, no detection).
    fallback : {"resize", "center"}
        See :data:`FALLBACKS` (``align="detect"`` only).
    detector : occface.data.FaceDetector, optional
        Default: YuNet at score threshold 0.6 without the padded retry (``pad=0``).
    cache_dir : str or path, optional
        Keep the aligned faces there (``align="detect"`` only).

    Returns
    -------
    FaceSource
        Faces ``(112, 112, 3)`` uint8 RGB; the fallback's name (with the detector's ``pad``)
        keys the face cache.
    """
    if align not in ("detect", "aligned"):
        raise ValueError(f"align must be 'detect' or 'aligned', got {align!r}")
    if align == "detect":
        if detector is None:
            from occface.data import FaceDetector
            detector = FaceDetector(pad=0)
        tag = f"|pad={getattr(detector, 'pad', '')}"
        return FaceSource("detect", size=112, detector=detector, cache_dir=cache_dir,
                          fallback=_CropFallback(fallback, tag))
    return FaceSource("aligned", size=112)
