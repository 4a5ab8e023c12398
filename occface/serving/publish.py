"""The logic of ``tools/export.py``: load, calibrate the threshold on LFW, export, self-check."""

import pathlib

import numpy as np

from occface.models.io import load_generator, load_keras_model
from occface.paths import REPO_ROOT, data_root
from occface.serving.cascade import cascade_policy
from occface.serving.check import check_export
from occface.serving.layout import resolve_version
from occface.serving.signatures import ALIGNED_SIZE, export_model, make_embed_fn

__all__ = ["SAMPLES_DIR", "lfw_pair_faces", "calibrate_threshold", "sample_faces", "run_export"]

SAMPLES_DIR = REPO_ROOT / "saved_models" / "samples"


def lfw_pair_faces(lfw_root=None, aligned_dir=None, size=112, max_pairs=None, progress=None,
                   folds=None):
    """Aligned faces for the LFW ``pairs.txt`` protocol.

    Parameters
    ----------
    lfw_root : path, optional
        LFW folder with ``pairs.txt`` and ``lfw-deepfunneled/`` (default ``data_root()/lfw``).
    aligned_dir : path, optional
        A pre-aligned tree with the same relative names (``Name/Name_0001.jpg``); images missing
        there are detected and aligned from the raw file.
    max_pairs : int, optional
        Use only the first pairs of each fold, keeping same/different balance per fold.
    folds : iterable of int, optional
        Use only these folds (0-based), e.g. ``(7, 8, 9)`` when folds 0-6 trained the model.

    Returns
    -------
    faces : np.ndarray, uint8, shape (U, size, size, 3)
        Each distinct image once.
    index_a, index_b : np.ndarray, int, shape (P,)
        Rows of ``faces`` for each pair.
    issame : np.ndarray, bool, shape (P,)
    folds : np.ndarray, int, shape (P,)
    """
    import cv2
    from occface.data import load_aligned_face, read_lfw_pairs

    lfw_root = pathlib.Path(lfw_root) if lfw_root else data_root() / "lfw"
    pairs = read_lfw_pairs(lfw_root / "pairs.txt")
    paths_a, paths_b = pairs.image_paths(lfw_root)
    issame = np.asarray(pairs.issame)
    use_folds = sorted(set(int(f) for f in folds)) if folds is not None else list(range(10))
    folds = np.asarray(pairs.folds)
    keep = np.flatnonzero(np.isin(folds, use_folds))
    if max_pairs is not None and max_pairs < len(keep):
        per_half = max(1, max_pairs // (2 * len(use_folds)))  # same/different halves per fold
        keep = np.concatenate([np.flatnonzero((folds == f) & (issame == s))[:per_half]
                               for f in use_folds for s in (True, False)])
    paths_a = [str(paths_a[i]) for i in keep]
    paths_b = [str(paths_b[i]) for i in keep]
    unique = sorted(set(paths_a) | set(paths_b))
    position = {p: i for i, p in enumerate(unique)}
    faces = np.empty((len(unique), size, size, 3), np.uint8)
    raw_root = lfw_root / "lfw-deepfunneled"
    for i, path in enumerate(unique):
        aligned = None
        if aligned_dir is not None:
            rel = pathlib.Path(path).relative_to(raw_root)
            candidate = pathlib.Path(aligned_dir) / rel
            if candidate.is_file():
                bgr = cv2.imread(str(candidate))
                if bgr is not None:
                    if bgr.shape[0] != size:
                        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
                    aligned = bgr[..., ::-1]
        if aligned is None:
            aligned = load_aligned_face(path, size=size)[0]
        faces[i] = aligned
        if progress is not None:
            progress.update(1)
    index_a = np.array([position[p] for p in paths_a])
    index_b = np.array([position[p] for p in paths_b])
    return faces, index_a, index_b, issame[keep], folds[keep]


def calibrate_threshold(scores, issame, folds=None):
    """Choose the verification threshold and say how it performs.

    The threshold maximises accuracy over all given pairs (the LFW protocol's per-fold rule
    applied to everything); the 10-fold accuracy is reported beside it when ``folds`` is given.

    Returns
    -------
    dict
        ``threshold``, ``accuracy``, ``far`` and ``tar`` at that threshold, ``pairs``, and
        ``ten_fold_accuracy`` / ``ten_fold_std``.
    """
    from occface.evaluation import best_threshold, verification_accuracy

    scores = np.asarray(scores, np.float64)
    issame = np.asarray(issame, bool)
    threshold, _ = best_threshold(scores, issame)
    decide = scores >= threshold
    out = {
        "threshold": threshold,
        "accuracy": float(np.mean(decide == issame)),
        "far": float(np.mean(decide[~issame])) if (~issame).any() else None,
        "tar": float(np.mean(decide[issame])) if issame.any() else None,
        "pairs": int(len(scores)),
    }
    if folds is not None and len(np.unique(folds)) >= 2:
        result = verification_accuracy(scores, issame, folds=np.asarray(folds))
        out["ten_fold_accuracy"] = float(result.accuracy)
        out["ten_fold_std"] = float(result.std)
    return out


def sample_faces(folder=None, size=112, limit=8):
    """Aligned real faces for the export self-check (detected in ``folder``'s photos)."""
    from occface.data import load_aligned_face
    folder = pathlib.Path(folder) if folder else SAMPLES_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"self-check image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(files) < 2:
        raise ValueError(f"self-check needs at least two face photos in {folder}")
    return np.stack([load_aligned_face(p, size=size)[0] for p in files[:limit]])


def run_export(model, kind, export_dir, version=1, overwrite=False, generator=None,
               threshold=None, data_dir=None, aligned_dir=None, calibration_pairs=6000,
               calibration_folds=None,
               flip_test=True, cascade_evidence=None, check_images=None, log=None,
               progress_factory=None, extra_metadata=None):
    """Everything ``tools/export.py`` does; returns a JSON-friendly report.

    Loads the model(s) (:mod:`occface.models.io`: a ``.keras`` file, a training ``model_dir``
    or an occface ``embed`` export for the recognizer; a ``.keras`` file or ID-GAN ``model_dir``
    for the generator), calibrates the threshold on LFW pairs unless ``threshold`` is given,
    decides the cascade policy from ``cascade_evidence``, exports, and self-checks the export in
    a fresh process before it is published.

    ``extra_metadata`` (a dict) is merged into the export's metadata (e.g. the source weights'
    licence). ``log(message)`` receives status lines and ``progress_factory(total, desc)`` may return a
    progress bar (an object with ``update(n)`` and ``close()``); both default to silence.

    Raises
    ------
    ExportError
        ``export_dir`` is not a directory or the version exists (raised before any work), or the
        self-check fails.
    FileNotFoundError, ValueError
        Missing or unloadable models, evidence or self-check images.
    """
    import tensorflow as tf

    log = log or (lambda msg: None)
    # Refuse early, before any expensive calibration, if the version (or export_dir) is unusable.
    resolve_version(export_dir, version, overwrite)
    recognizer = gen = None
    if kind in ("embed", "cascade"):
        recognizer = load_keras_model(model)
    if kind == "inpaint":
        gen = load_generator(model)
    if kind == "cascade":
        if not generator:
            raise ValueError("--kind cascade needs --generator")
        gen = load_generator(generator)

    metadata, policy = {"source_model": str(model), **(extra_metadata or {})}, None
    if generator:
        metadata["source_generator"] = str(generator)
    if recognizer is not None:
        if threshold is None:
            log("calibrating the threshold on LFW pairs ...")
            load_bar = progress_factory(None, "align") if progress_factory else None
            faces, ia, ib, issame, folds = lfw_pair_faces(
                data_dir, aligned_dir, max_pairs=calibration_pairs, progress=load_bar,
                folds=calibration_folds)
            if load_bar is not None:
                load_bar.close()
            embed = make_embed_fn(recognizer, flip_test)
            bar = progress_factory(len(faces), "embed") if progress_factory else None
            emb = []
            for start in range(0, len(faces), 128):
                emb.append(embed(tf.constant(faces[start:start + 128])).numpy())
                if bar is not None:
                    bar.update(len(emb[-1]))
            if bar is not None:
                bar.close()
            emb = np.concatenate(emb)
            scores = np.sum(emb[ia] * emb[ib], axis=1)
            calibration = calibrate_threshold(scores, issame, folds)
            calibration["data"] = "LFW pairs.txt"
            calibration["folds"] = (sorted(int(f) + 1 for f in calibration_folds)
                                    if calibration_folds is not None else list(range(1, 11)))
            threshold = calibration["threshold"]
        else:
            calibration = {"threshold": float(threshold), "source": "given by the user"}
        metadata["calibration"] = calibration
    if kind == "cascade":
        if not cascade_evidence:
            raise ValueError("--kind cascade needs --cascade_evidence (measured accuracies)")
        policy, evidence = cascade_policy(cascade_evidence)
        metadata["cascade_evidence"] = evidence

    faces = sample_faces(check_images, size=ALIGNED_SIZE)
    masks = None
    if gen is not None:
        masks = np.zeros(faces.shape[:3] + (1,), np.float32)
        masks[:, 64:112, 32:80] = 1.0  # a 48x48 hole over the lower face
    diffs = {}

    def self_check(written_dir):
        log("self-check: reloading the export in a fresh process without occface ...")
        diffs.update(check_export(written_dir, faces=faces, recognizer=recognizer,
                                  generator=gen, masks=masks))

    vdir = export_model(export_dir, kind=kind, recognizer=recognizer, generator=gen,
                        version=version, overwrite=overwrite, flip_test=flip_test,
                        threshold=threshold if threshold is not None else 0.0,
                        inpaint_policy=policy, metadata=metadata, before_publish=self_check)
    return {"export": str(vdir), "kind": kind, "threshold": threshold,
            "calibration": metadata.get("calibration"), "self_check_max_abs_diff": diffs,
            "inpaint_policy": policy}
