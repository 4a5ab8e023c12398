"""IJB-C (and IJB-B) 1:1 protocol files: reading a release, and its occluded-subset variant.

Files (insightface's IJB release layout; ``<t>`` is ``ijbc`` or ``ijbb``)::

    <root>/meta/<t>_face_tid_mid.txt        "<image> <template id> <media id>" per image
    <root>/meta/<t>_template_pair_label.txt "<template 1> <template 2> <label 0/1>" per pair
    <root>/meta/<t>_name_5pts_score.txt     "<image> x1 y1 ... x5 y5 <faceness score>" per image
    <root>/loose_crop/<image>               loose face crops

(the ``meta/`` files may also sit directly in ``<root>``). The crops are aligned and embedded by
:mod:`~occface.evaluation.ijbc_images`; the features are pooled into templates and the pairs
scored by :mod:`~occface.evaluation.ijbc_templates`.
"""

import dataclasses
import logging
import os
import pathlib

import numpy as np

__all__ = ["IJBCMeta", "read_ijbc", "read_image_list", "occluded_subset"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IJBCMeta:
    """Everything read from an IJB-style release, with images in ``face_tid_mid`` order.

    Attributes
    ----------
    image_dir : pathlib.Path
        Directory of the loose crops.
    names : list of str, length N
    landmarks : np.ndarray, float32, shape (N, 5, 2)
        Five landmarks in crop pixel coordinates.
    faceness : np.ndarray, float32, shape (N,)
    templates, medias : np.ndarray, int64, shape (N,)
    pair_t1, pair_t2 : np.ndarray, int64, shape (P,)
    pair_label : np.ndarray, bool, shape (P,)
    """
    image_dir: pathlib.Path
    names: list
    landmarks: np.ndarray
    faceness: np.ndarray
    templates: np.ndarray
    medias: np.ndarray
    pair_t1: np.ndarray
    pair_t2: np.ndarray
    pair_label: np.ndarray

    def __len__(self):
        return len(self.names)

    def subset_images(self, keep):
        """A copy with only the images at indices ``keep`` (pairs unchanged)."""
        keep = np.asarray(keep, dtype=np.int64)
        return dataclasses.replace(self, names=[self.names[k] for k in keep],
                                   landmarks=self.landmarks[keep], faceness=self.faceness[keep],
                                   templates=self.templates[keep], medias=self.medias[keep])


def _find(root, filename):
    for cand in (root / "meta" / filename, root / filename):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"IJB file {filename} not found in {root}/meta or {root}")


def _read_int_table(path, columns):
    """Fast whitespace-separated integer table (15.6 M IJB-C pair lines in a few seconds)."""
    flat = np.fromfile(path, dtype=np.int64, sep=" ")
    if flat.size % columns:
        raise ValueError(f"{path}: expected {columns} integer columns on every line")
    return flat.reshape(-1, columns)


def read_ijbc(root, target="ijbc", image_dir=None):
    """Read an IJB-C (or IJB-B) 1:1 release.

    Parameters
    ----------
    root : str or path
        Release directory (holding ``meta/`` and ``loose_crop/``).
    target : {"ijbc", "ijbb"}
        File-name prefix.
    image_dir : str or path, optional
        Loose crops directory; default ``<root>/loose_crop``.

    Returns
    -------
    IJBCMeta

    Raises
    ------
    FileNotFoundError
        A protocol file or the crop directory is missing.
    ValueError
        A malformed line (file and line named), an image of ``face_tid_mid`` without landmarks, or
        a pair naming a template that has no image.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"IJB directory not found: {root}")
    target = target.lower()
    tid_path = _find(root, f"{target}_face_tid_mid.txt")
    pair_path = _find(root, f"{target}_template_pair_label.txt")
    lmk_path = _find(root, f"{target}_name_5pts_score.txt")
    image_dir = pathlib.Path(image_dir) if image_dir is not None else root / "loose_crop"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"IJB loose crop directory not found: {image_dir}")

    lmk = {}
    with open(lmk_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 12:
                raise ValueError(f"{lmk_path}:{n}: expected '<image> x1 y1 ... x5 y5 <score>' "
                                 f"(12 fields), got {len(fields)}")
            try:
                lmk[fields[0]] = np.array(fields[1:], dtype=np.float32)
            except ValueError:
                raise ValueError(f"{lmk_path}:{n}: non-numeric landmark or score") from None

    names, templates, medias = [], [], []
    with open(tid_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 3:
                raise ValueError(f"{tid_path}:{n}: expected '<image> <template> <media>'")
            try:
                templates.append(int(fields[1]))
                medias.append(int(fields[2]))
            except ValueError:
                raise ValueError(f"{tid_path}:{n}: template and media ids must be integers") \
                    from None
            names.append(fields[0])
    if not names:
        raise ValueError(f"{tid_path}: no images")
    missing = [nm for nm in names if nm not in lmk]
    if missing:
        raise ValueError(f"{len(missing)} images of {tid_path.name} have no landmarks in "
                         f"{lmk_path.name} (e.g. {missing[0]})")
    rows = np.stack([lmk[nm] for nm in names])
    pairs = _read_int_table(pair_path, 3)
    templates = np.asarray(templates, dtype=np.int64)
    known = np.unique(templates)
    for col in (0, 1):
        bad = ~np.isin(pairs[:, col], known)
        if bad.any():
            raise ValueError(f"{pair_path.name}: template {int(pairs[bad, col][0])} of a pair has "
                             f"no image in {tid_path.name}")
    if not np.isin(pairs[:, 2], (0, 1)).all():
        raise ValueError(f"{pair_path.name}: labels must be 0 or 1")
    return IJBCMeta(image_dir=image_dir, names=names,
                    landmarks=rows[:, :10].reshape(-1, 5, 2), faceness=rows[:, 10],
                    templates=templates, medias=np.asarray(medias, dtype=np.int64),
                    pair_t1=pairs[:, 0].copy(), pair_t2=pairs[:, 1].copy(),
                    pair_label=pairs[:, 2].astype(bool))


def read_image_list(path):
    """Read a list of image names (one per line, ``#`` comments and blank lines skipped)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip() and not line.startswith("#")]


def occluded_subset(meta, occluded, mode="images"):
    """The occluded-subset variant of IJB-C 1:1 (LCD paper, Table IV).

    Parameters
    ----------
    meta : IJBCMeta
    occluded : iterable of str
        Names of the occluded images (as in ``face_tid_mid``; a leading ``loose_crop/`` or any
        directory part is ignored).
    mode : {"images", "templates"}
        ``"images"``: templates are rebuilt from their occluded images only; templates with no
        occluded image and the pairs using them are dropped (both sides of every kept pair are
        occluded faces). ``"templates"``: templates keep all their images; only pairs where at
        least one template contains an occluded image are kept.

    Returns
    -------
    sub : IJBCMeta
        The restricted protocol.
    keep : np.ndarray of int
        Indices of ``sub``'s images in ``meta`` (so features computed on ``meta`` can be reused:
        ``feats[keep]``).
    """
    if mode not in ("images", "templates"):
        raise ValueError(f"mode must be 'images' or 'templates', got {mode!r}")
    wanted = {os.path.basename(str(n)) for n in occluded}
    is_occ = np.array([os.path.basename(n) in wanted for n in meta.names], dtype=bool)
    unmatched = len(wanted) - len({os.path.basename(n) for n in np.array(meta.names)[is_occ]})
    if not is_occ.any():
        raise ValueError("none of the listed occluded images is in the IJB protocol")
    if unmatched:
        log.warning("%d listed occluded images are not in the protocol", unmatched)
    occ_templates = np.unique(meta.templates[is_occ])
    if mode == "images":
        keep = np.flatnonzero(is_occ)
        pair_ok = np.isin(meta.pair_t1, occ_templates) & np.isin(meta.pair_t2, occ_templates)
    else:
        keep = np.arange(len(meta))
        pair_ok = np.isin(meta.pair_t1, occ_templates) | np.isin(meta.pair_t2, occ_templates)
    if not pair_ok.any():
        raise ValueError("no template pair is left in the occluded subset")
    sub = meta.subset_images(keep)
    sub = dataclasses.replace(sub, pair_t1=meta.pair_t1[pair_ok], pair_t2=meta.pair_t2[pair_ok],
                              pair_label=meta.pair_label[pair_ok])
    return sub, keep
