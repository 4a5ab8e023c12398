"""Pair-verification protocols (LFW ``pairs.txt``, insightface ``.bin`` sets, generic pair lists)
on clean and occluded faces, with face and embedding caches.

A protocol is a :class:`PairSet` (two image keys per pair, labels, folds) plus a
:class:`FaceSource` that turns a key into an aligned RGB face and its five landmarks. Faces are
loaded (detected and aligned) once per key; embeddings are cached per ``(key, occlusion, seed,
flip)``, so evaluating several occlusion kinds in one run re-uses the clean side and never
re-detects.
"""

import dataclasses
import hashlib
import logging
import pathlib

import numpy as np

from occface.data.folders import IMAGE_EXTENSIONS
from occface.evaluation.embedding import as_embedding_model, embed_images
from occface.evaluation.roc import operating_point, roc
from occface.evaluation.similarity import feature_robustness, pair_scores
from occface.evaluation.verification import fold_ids, verification_accuracy
from occface.evaluation.occlusion import OCCLUSION_KINDS, occlude_face, pair_occlusion

__all__ = ["PairSet", "FaceSource", "EmbeddingCache", "lfw_pair_set", "bin_pair_set",
           "read_pair_list", "evaluate_pairs", "LFW_FARS", "IMAGE_EXTENSIONS", "list_images"]

log = logging.getLogger(__name__)

#: FAR targets reported for pair protocols (6,000 LFW pairs: 3,000 impostors, so 1e-3 is 3 pairs).
LFW_FARS = (1e-3, 1e-2, 1e-1)


@dataclasses.dataclass
class PairSet:
    """Image pairs of a verification protocol.

    Attributes
    ----------
    keys_a, keys_b : list
        Key (path or index) of the first and second image of each pair; a :class:`FaceSource`
        turns keys into faces.
    issame : np.ndarray of bool, shape (P,)
    folds : np.ndarray of int, shape (P,)
        Fold of each pair (``0..k-1``).
    name : str
    """
    keys_a: list
    keys_b: list
    issame: np.ndarray
    folds: np.ndarray
    name: str = ""

    def __post_init__(self):
        self.issame = np.asarray(self.issame, dtype=bool)
        if not (len(self.keys_a) == len(self.keys_b) == self.issame.size):
            raise ValueError("keys_a, keys_b and issame must have one entry per pair")
        self.folds = fold_ids(self.issame.size, self.folds)

    def __len__(self):
        return self.issame.size

    def unique_keys(self):
        return list(dict.fromkeys(list(self.keys_a) + list(self.keys_b)))


def lfw_pair_set(lfw_root, pairs_file="pairs.txt", image_root=None, ext=None):
    """The LFW pairs of ``pairs_file`` (10 folds for ``pairs.txt``) as a :class:`PairSet`.

    Parameters
    ----------
    lfw_root : str or path
        LFW directory holding ``pairs_file`` (and ``lfw-deepfunneled/``).
    pairs_file : str or path
        Relative to ``lfw_root`` unless absolute.
    image_root : str or path, optional
        A pre-aligned tree with LFW's layout (``Name/Name_0001.jpg``) to read instead of the raw
        images; ``ext`` overrides the file extension (e.g. ``".png"``).
    """
    from occface.data import read_lfw_pairs
    lfw_root = pathlib.Path(lfw_root)
    pairs = read_lfw_pairs(lfw_root / pairs_file)
    root = pathlib.Path(image_root) if image_root is not None else lfw_root
    if ext is None and image_root is not None:
        ext = _guess_extension(root)
    a, b = pairs.image_paths(root, ext=ext)
    return PairSet(a, b, pairs.issame, pairs.folds, name=f"lfw:{pathlib.Path(pairs_file).name}")


def _guess_extension(root):
    for sub in sorted(p for p in pathlib.Path(root).iterdir() if p.is_dir())[:20]:
        for f in sub.iterdir():
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                return f.suffix
    return None


def bin_pair_set(n_images, issame, folds=10, name="bin"):
    """Pairs ``(2i, 2i+1)`` of an insightface ``.bin`` set (keys are image indices)."""
    issame = np.asarray(issame, dtype=bool)
    if n_images != 2 * issame.size:
        raise ValueError(f".bin set has {n_images} images for {issame.size} pairs")
    return PairSet(list(range(0, n_images, 2)), list(range(1, n_images, 2)), issame, folds, name)


def read_pair_list(path, root=None, folds=10):
    """A generic pair list: lines ``<image a> <image b> <label 0/1> [<fold>]``.

    Paths are relative to ``root`` (default: the list's directory) unless absolute; ``#`` lines
    are comments. Without a fold column the pairs are split into ``folds`` contiguous folds.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair list not found: {path}")
    root = pathlib.Path(root) if root is not None else path.parent
    a, b, same, fold = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) not in (3, 4) or fields[2] not in ("0", "1"):
                raise ValueError(f"{path}:{n}: expected '<image a> <image b> <0|1> [<fold>]', got "
                                 f"{line.strip()!r}")
            a.append(str(root / fields[0]))
            b.append(str(root / fields[1]))
            same.append(fields[2] == "1")
            if len(fields) == 4:
                fold.append(int(fields[3]))
    if not same:
        raise ValueError(f"{path}: no pairs")
    if fold and len(fold) != len(same):
        raise ValueError(f"{path}: the fold column must be given on every line or on none")
    return PairSet(a, b, same, np.asarray(fold) if fold else folds, name=f"pairs:{path.name}")


def list_images(root):
    """Sorted image files under ``root`` (recursive)."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image directory not found: {root}")
    return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


class FaceSource:
    """Turns image keys into aligned RGB faces with landmarks, caching them in memory.

    Parameters
    ----------
    mode : {"detect", "aligned", "array"}
        ``"detect"``: read the file, detect and align (``occface.data.load_aligned_face``; a face
        that is not found falls back to a centre crop, counted in ``stats``). ``"aligned"``: the
        file is already an aligned face; it is read (resized to ``size`` if needed) and its
        landmarks are the template's. ``"array"``: keys index ``images`` (e.g. a ``.bin`` set).
    size : int
        Side of the aligned faces (112 = ArcFace template).
    images : np.ndarray, shape (N, H, W, 3), for ``mode="array"``
    detector : occface.data.FaceDetector, optional
    cache_dir : str or path, optional
        With ``mode="detect"``, :meth:`preload` stores the aligned faces of a key list in an
        ``.npz`` there and re-reads it next time (no re-detection across runs).
    fallback : callable, optional
        With ``mode="detect"``: the face of an image in which no face is found,
        ``fallback(image_bgr (H, W, 3) uint8, size) -> (face (size, size, 3) uint8, landmarks
        (5, 2))`` (channel order kept). Default: the centre crop of
        :func:`occface.data.load_aligned_face`. Its ``name`` attribute (else ``__name__``) is part
        of the on-disk cache key.
    """

    def __init__(self, mode="detect", size=112, images=None, detector=None, cache_dir=None,
                 fallback=None):
        if mode not in ("detect", "aligned", "array"):
            raise ValueError(f"mode must be 'detect', 'aligned' or 'array', got {mode!r}")
        if mode == "array" and images is None:
            raise ValueError("mode='array' needs images")
        self.mode = mode
        self.size = int(size)
        self.images = images
        self.detector = detector
        self.cache_dir = pathlib.Path(cache_dir) if cache_dir else None
        self.fallback = fallback
        self._faces = {}
        self.stats = {"loaded": 0, "not_found": 0}

    def _landmarks(self, shape):
        from occface.data import template_landmarks
        return template_landmarks((shape[0], shape[1]))

    def load(self, key):
        """Read one face, bypassing the in-memory cache: ``(image uint8 (S, S, 3), landmarks
        (5, 2), found)``; :meth:`get` caches what this returns."""
        if self.mode == "array":
            img = np.asarray(self.images[int(key)])
            return img, self._landmarks(img.shape), True
        if self.mode == "aligned":
            import cv2
            from occface.data import read_image
            img = cv2.cvtColor(read_image(key), cv2.COLOR_BGR2RGB)
            if img.shape[:2] != (self.size, self.size):
                interp = cv2.INTER_AREA if img.shape[0] > self.size else cv2.INTER_LINEAR
                img = cv2.resize(img, (self.size, self.size), interpolation=interp)
            return img, self._landmarks(img.shape), True
        if self.fallback is None:
            from occface.data import load_aligned_face
            img, lmk, found = load_aligned_face(key, size=self.size, detector=self.detector)
            return img, np.asarray(lmk, np.float32), bool(found)
        import cv2
        from occface.data import NoFaceError, detect_and_align, read_image
        bgr = read_image(key)
        try:
            img, lmk, found = detect_and_align(bgr, self.size, self.detector, fallback=None,
                                               name=str(key))
        except NoFaceError:
            (img, lmk), found = self.fallback(bgr, self.size), False
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.asarray(lmk, np.float32), bool(found)

    def get(self, key):
        """``(image uint8 (S, S, 3), landmarks (5, 2), found)`` for ``key``."""
        hit = self._faces.get(key)
        if hit is None:
            hit = self.load(key)
            self._faces[key] = hit
            self.stats["loaded"] += 1
            self.stats["not_found"] += int(not hit[2])
        return hit

    def preload(self, keys, progress=None):
        """Load every key (from the on-disk cache when possible)."""
        keys = [k for k in dict.fromkeys(keys) if k not in self._faces]
        if not keys:
            return
        cache = self._cache_file(keys)
        if cache is not None and cache.is_file():
            with np.load(cache) as z:
                for k, img, lmk, found in zip(keys, z["images"], z["landmarks"], z["found"]):
                    self._faces[k] = (img, lmk, bool(found))
                    self.stats["loaded"] += 1
                    self.stats["not_found"] += int(not found)
            if progress is not None:
                progress(len(keys))
            log.info("read %d aligned faces from %s", len(keys), cache)
            return
        for k in keys:
            self.get(k)
            if progress is not None:
                progress(1)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp.npz")
            np.savez(tmp, images=np.stack([self._faces[k][0] for k in keys]),
                     landmarks=np.stack([self._faces[k][1] for k in keys]),
                     found=np.array([self._faces[k][2] for k in keys]))
            tmp.replace(cache)

    def _cache_file(self, keys):
        if self.cache_dir is None or self.mode != "detect":
            return None
        h = hashlib.sha1()
        threshold = getattr(self.detector, "score_threshold", "")
        h.update(f"{self.mode}|{self.size}|{threshold}".encode())
        if self.fallback is not None:  # the default fallback keeps the old cache names
            name = getattr(self.fallback, "name", getattr(self.fallback, "__name__", ""))
            h.update(f"|fallback={name}".encode())
        for k in keys:
            h.update(str(k).encode("utf-8") + b"\0")
        return self.cache_dir / f"faces_{self.size}_{h.hexdigest()[:16]}.npz"


class EmbeddingCache:
    """Embeddings per ``(key, occlusion, seed, flip)`` for one model."""

    def __init__(self, model, source, batch_size=64, progress_factory=None):
        self.model = as_embedding_model(model)
        self.source = source
        self.batch_size = batch_size
        self.progress_factory = progress_factory
        self._emb = {}

    def get(self, keys, occlusion="none", seed=0, flip=False):
        """Embeddings ``(len(keys), D)`` float32 of the faces of ``keys`` under ``occlusion``."""
        tag = (occlusion, seed if occlusion != "none" else 0, bool(flip))
        todo = [k for k in dict.fromkeys(keys) if (k,) + tag not in self._emb]
        if todo:
            bar = (self.progress_factory(total=len(todo), desc=f"embed {occlusion:<10s}")
                   if self.progress_factory else None)
            for s in range(0, len(todo), self.batch_size * 4):
                part = todo[s:s + self.batch_size * 4]
                imgs = []
                for k in part:
                    img, lmk, _ = self.source.get(k)
                    if occlusion != "none":
                        img, _ = occlude_face(img, lmk, occlusion, seed, key=k)
                    imgs.append(img)
                emb = embed_images(self.model, np.stack(imgs), batch_size=self.batch_size,
                                   flip=flip, progress=bar.update if bar else None)
                for k, e in zip(part, emb):
                    self._emb[(k,) + tag] = e
            if bar is not None:
                bar.close()
        return np.stack([self._emb[(k,) + tag] for k in keys])


def evaluate_pairs(cache, pairs, occlusion="none", occlude="both", seed=0, flip=False,
                   fars=LFW_FARS, robustness=True, roc_points=512):
    """Verification on a :class:`PairSet` with optional synthetic occlusion.

    Parameters
    ----------
    cache : EmbeddingCache
        Model, face source and the embeddings computed so far.
    pairs : PairSet
    occlusion : str
        One of :data:`OCCLUSION_KINDS` (``"none"`` = clean).
    occlude : {"both", "one"}
        Occlude both images of every pair, or only the second (clean gallery vs occluded probe).
    seed : int
        Occlusion seed (per image, see :mod:`occface.evaluation.occlusion`).
    flip : bool
        Flip-test embeddings.
    fars : sequence of float
        TAR@FAR targets.
    robustness : bool
        Also report feature robustness (LCD Eq. 8) between clean and occluded embeddings of the
        occluded images.

    Returns
    -------
    dict
        Every number: accuracy/std/fold accuracies/thresholds (10-fold protocol), TAR@FAR with
        the exact operating points, AUC, sampled ROC, score means, robustness, counts and settings.
    """
    if occlusion not in OCCLUSION_KINDS:
        raise ValueError(f"unknown occlusion {occlusion!r}; choose from "
                         f"{', '.join(OCCLUSION_KINDS)}")
    occ_a, occ_b = pair_occlusion(len(pairs), "none" if occlusion == "none" else occlude)
    # Warm the cache with one batch run per condition (one progress bar each), then assemble.
    for flag, kind in ((False, "none"), (True, occlusion)):
        needed = [k for k, o in zip(pairs.keys_a, occ_a) if o == flag] + \
                 [k for k, o in zip(pairs.keys_b, occ_b) if o == flag]
        if needed:
            cache.get(list(dict.fromkeys(needed)), kind, seed, flip)
    emb = {}
    for side, keys, occ in (("a", pairs.keys_a, occ_a), ("b", pairs.keys_b, occ_b)):
        keys = list(keys)
        out = None
        for flag in (False, True):
            idx = np.flatnonzero(occ == flag)
            if idx.size:
                part = cache.get([keys[i] for i in idx], occlusion if flag else "none", seed,
                                 flip)
                if out is None:
                    out = np.empty((len(keys), part.shape[1]), np.float32)
                out[idx] = part
        emb[side] = out
    scores = pair_scores(emb["a"], emb["b"])
    ver = verification_accuracy(scores, pairs.issame, pairs.folds)
    points = operating_point(scores, pairs.issame, list(fars))
    curve = roc(scores, pairs.issame)
    fpr, tpr, _ = curve.sample(roc_points)
    result = {
        "protocol": pairs.name, "occlusion": occlusion,
        "occlude": "none" if occlusion == "none" else occlude,
        "seed": int(seed), "flip": bool(flip),
        "n_pairs": len(pairs), "n_genuine": int(pairs.issame.sum()),
        "n_impostor": int((~pairs.issame).sum()),
        **ver.to_dict(),
        "tar_at_far": {f"{p.far_target:g}": p.tar for p in points},
        "operating_points": [p.to_dict() for p in points],
        "auc": curve.auc,
        "mean_genuine_score": float(scores[pairs.issame].mean()),
        "mean_impostor_score": float(scores[~pairs.issame].mean()),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }
    if robustness and occlusion != "none":
        keys = list(dict.fromkeys([k for k, o in zip(pairs.keys_a, occ_a) if o] +
                                  [k for k, o in zip(pairs.keys_b, occ_b) if o]))
        result["feature_robustness"] = feature_robustness(
            cache.get(keys, "none", seed, flip), cache.get(keys, occlusion, seed, flip))
        result["n_occluded_images"] = len(keys)
    return result
