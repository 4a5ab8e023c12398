"""LFW protocol files: ``pairs.txt`` (10 folds), ``pairsDevTrain/DevTest.txt`` and identity splits."""

import dataclasses
import logging
import os
import pathlib

import numpy as np

log = logging.getLogger(__name__)

LFW_IMAGE_DIR = "lfw-deepfunneled"


@dataclasses.dataclass
class LFWPairs:
    """The pairs of an LFW protocol file.

    Attributes
    ----------
    pairs : list of (str, int, str, int)
        ``(name_a, idx_a, name_b, idx_b)``; indices are 1-based as in the file
        (``Name/Name_%04d.jpg``). For same-person pairs ``name_a == name_b``.
    issame : np.ndarray of bool, shape (P,)
    folds : np.ndarray of int, shape (P,)
        Fold of each pair, ``0 .. num_folds - 1`` (``pairs.txt``: 10 folds of 300 same + 300
        different pairs; the View-1 dev files: a single fold 0).
    num_folds : int
    path : str
        The file the pairs were read from.
    """

    pairs: list
    issame: np.ndarray
    folds: np.ndarray
    num_folds: int
    path: str = ""

    def __len__(self):
        return len(self.pairs)

    def image_paths(self, root, ext=None):
        """Paths of the two images of every pair.

        Parameters
        ----------
        root : str or path
            Either the LFW directory holding ``lfw-deepfunneled/`` or an image tree laid out like
            it (``<root>/Name/Name_0001.jpg``, e.g. the output of ``tools/prepare_dataset.py``).
        ext : str, optional
            File extension to use instead of ``.jpg`` (e.g. ``".png"`` for a PNG tree).

        Returns
        -------
        (list of str, list of str)
            Paths of the first and second image of each pair.
        """
        root = pathlib.Path(root)
        if (root / LFW_IMAGE_DIR).is_dir():
            root = root / LFW_IMAGE_DIR
        ext = ".jpg" if ext is None else (ext if ext.startswith(".") else "." + ext)
        a = [str(root / n1 / f"{n1}_{i1:04d}{ext}") for n1, i1, _, _ in self.pairs]
        b = [str(root / n2 / f"{n2}_{i2:04d}{ext}") for _, _, n2, i2 in self.pairs]
        return a, b

    def fold_identities(self):
        """The identity names used by each fold: a list of ``num_folds`` sets of names."""
        out = [set() for _ in range(self.num_folds)]
        for (n1, _, n2, _), fold in zip(self.pairs, self.folds):
            out[int(fold)].update((n1, n2))
        return out

    def fold_indices(self, fold):
        """Indices of the pairs in ``fold`` (int or iterable of ints)."""
        folds = [fold] if np.isscalar(fold) else list(fold)
        return np.flatnonzero(np.isin(self.folds, folds))

    def subset(self, indices):
        """A new :class:`LFWPairs` with only the pairs at ``indices`` (folds kept)."""
        indices = np.asarray(indices, dtype=int)
        return LFWPairs([self.pairs[i] for i in indices], self.issame[indices],
                        self.folds[indices], self.num_folds, self.path)


def read_lfw_pairs(path):
    """Read an LFW pairs file (``pairs.txt``, ``pairsDevTrain.txt``, ``pairsDevTest.txt``).

    The first line is a header, either ``"<folds>\\t<n>"`` (``pairs.txt``: each fold is ``n`` same
    then ``n`` different pairs) or ``"<n>"`` (dev files: one fold, ``n`` same then ``n`` different).
    Lines are ``Name\\ti\\tj`` (same person) or ``Name1\\ti\\tName2\\tj`` (different people).

    Parameters
    ----------
    path : str or path

    Returns
    -------
    LFWPairs

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the header or a line is malformed (the message names the file and line) or the number
        of pairs does not match the header.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LFW pairs file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = [(n + 1, line) for n, line in enumerate(lines) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty LFW pairs file")
    head = lines[0][1].split()
    try:
        head = [int(h) for h in head]
    except ValueError:
        raise ValueError(f"{path}:1: expected a header '<folds> <pairs per class>' or '<pairs per "
                         f"class>', got {lines[0][1]!r}") from None
    if len(head) == 2:
        num_folds, per_class = head
    elif len(head) == 1:
        num_folds, per_class = 1, head[0]
    else:
        raise ValueError(f"{path}:1: bad header {lines[0][1]!r}")
    pairs, issame = [], []
    for lineno, line in lines[1:]:
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            if len(fields) == 3:
                pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2])))
                issame.append(True)
            elif len(fields) == 4:
                pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3])))
                issame.append(False)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}:{lineno}: expected 'Name i j' or 'Name1 i Name2 j', "
                             f"got {line!r}") from None
    expected = num_folds * 2 * per_class
    if len(pairs) != expected:
        raise ValueError(f"{path}: header says {num_folds} fold(s) x 2 x {per_class} = {expected} "
                         f"pairs, found {len(pairs)}")
    folds = np.arange(len(pairs)) // (2 * per_class)
    issame = np.asarray(issame, dtype=bool)
    # Within each fold the first half must be same-person pairs.
    within = np.arange(len(pairs)) % (2 * per_class)
    if not np.array_equal(issame, within < per_class):
        log.warning("%s: same/different pairs are not in the standard per-fold order", path)
    return LFWPairs(pairs, issame, folds.astype(np.int64), num_folds, str(path))


def read_lfw_names(path):
    """Read ``lfw-names.txt`` / ``people.txt``-style ``Name\\tcount`` lines into a dict."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 2 and not fields[0].isdigit():
                out[fields[0]] = int(fields[1])
    return out


def _count_images(image_dir):
    counts = {}
    with os.scandir(image_dir) as it:
        for entry in it:
            if entry.is_dir() and not entry.name.startswith("."):  # e.g. .occface_prepare
                counts[entry.name] = sum(1 for e in os.scandir(entry.path) if e.is_file())
    return counts


def lfw_training_identities(lfw_root, folds=range(7), min_images=3, pairs_file="pairs.txt",
                            include_unpaired=False):
    """LFW identities for training that are disjoint from the held-out folds of ``pairs.txt``.

    The identities of the 10 folds of ``pairs.txt`` are disjoint, so training on the identities
    of ``folds`` (default 0..6) and testing on the pairs of the other folds never shares a person.

    Parameters
    ----------
    lfw_root : str or path
        Directory holding ``pairs.txt`` and ``lfw-deepfunneled/`` (or an image tree laid out like
        ``lfw-deepfunneled`` with ``pairs_file`` given as a full path).
    folds : iterable of int
        Folds whose identities are used (0-based).
    min_images : int
        Keep only identities with at least this many images in the tree.
    pairs_file : str or path
        Pairs file, relative to ``lfw_root`` unless absolute.
    include_unpaired : bool
        Also include identities that appear in no fold of ``pairs_file`` (they are disjoint
        from every fold too).

    Returns
    -------
    list of str
        Sorted identity names.
    """
    lfw_root = pathlib.Path(lfw_root)
    pairs = read_lfw_pairs(lfw_root / pairs_file)
    per_fold = pairs.fold_identities()
    folds = list(folds)
    for f in folds:
        if not 0 <= f < pairs.num_folds:
            raise ValueError(f"fold {f} out of range 0..{pairs.num_folds - 1}")
    chosen = set().union(*(per_fold[f] for f in folds)) if folds else set()
    image_dir = lfw_root / LFW_IMAGE_DIR if (lfw_root / LFW_IMAGE_DIR).is_dir() else lfw_root
    counts = _count_images(image_dir)
    if include_unpaired:
        used = set().union(*per_fold)
        chosen |= {name for name in counts if name not in used}
    others = set().union(*(per_fold[f] for f in range(pairs.num_folds) if f not in folds))
    overlap = chosen & others
    if overlap:  # never for the official pairs.txt; guard against other protocol files
        raise ValueError(f"{len(overlap)} identities of folds {folds} also occur in other folds "
                         f"(e.g. {sorted(overlap)[:3]})")
    return sorted(n for n in chosen if counts.get(n, 0) >= min_images)
