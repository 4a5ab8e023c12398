"""Inpainting methods side by side: image quality on held-out faces and occluded-pair verification.

The ID-GAN protocol (Ge et al. 2020, Tables II–IV) compares, on occluded faces of identities not
seen in training:

* ``OCC`` — the occluded face as is (no filling);
* ``Telea``, ``NS`` — OpenCV's classical inpainting (:func:`classical_inpaint`);
* generators, e.g. ``w/oID`` (trained without the identity terms) and ``wID`` (with them).

:func:`evaluate_inpainting_pairs` occludes the second face of each verification pair (the first
is the clean gallery face) reproducibly per image, fills the hole with every method, and reports
PSNR/SSIM of the filled faces against the clean ones (whole image, ``tf.image`` conventions) and,
with a recognizer, the k-fold verification accuracy of the pairs.
"""

import numpy as np

from occface.inpainting.classical import classical_inpaint
from occface.inpainting.generator import make_inpaint_fn
from occface.models.io import load_generator  # re-exported: the one generator loader

__all__ = ["generator_inpaint_fn", "load_generator", "inpainting_methods", "inpaint_with",
           "side_by_side", "image_quality", "evaluate_inpainting_pairs", "format_inpainting_table"]


def generator_inpaint_fn(generator, batch_size=32):
    """Wrap a generator as ``fn(images uint8 (N, s, s, 3), masks (N, s, s[, 1])) -> uint8``.

    The same graph function the SavedModel export serves (:func:`make_inpaint_fn`):
    faces of another size than the generator's are resized to it (area; a generator pixel is hole
    when any part of it is) and the filled hole is resized back (bilinear); the known pixels of
    the input are kept exactly. So measured numbers are those of the exported model.
    """
    import tensorflow as tf
    fns = {}

    def fn(images, masks):
        images = np.asarray(images, np.uint8)
        masks = (np.asarray(masks) > 0).astype(np.float32)
        if masks.ndim == 3:
            masks = masks[..., None]
        if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3:
            raise ValueError(f"expected square RGB faces (N, s, s, 3), got {images.shape}")
        if masks.shape[:3] != images.shape[:3]:
            raise ValueError(f"masks {masks.shape} do not match faces {images.shape}")
        side = int(images.shape[1])
        if side not in fns:
            fns[side] = tf.function(make_inpaint_fn(generator, side), reduce_retracing=True)
        parts = [fns[side](tf.constant(images[s:s + batch_size]),
                           tf.constant(masks[s:s + batch_size])).numpy()
                 for s in range(0, len(images), batch_size)]
        return np.concatenate(parts, axis=0) if parts else images.copy()
    return fn


def inpainting_methods(generators=None, classical=("telea", "ns"), include_occ=True, radius=3):
    """Name -> ``fn(images uint8, masks) -> uint8`` for the rows of the comparison.

    Parameters
    ----------
    generators : dict, optional
        Row name -> keras generator (or path of one, see :func:`load_generator`).
    classical : sequence of {"telea", "ns"}
    include_occ : bool
        Add ``"OCC"`` (the occluded face, unfilled).
    radius : float
        Radius of the classical methods.
    """
    methods = {}
    if include_occ:
        methods["OCC"] = lambda images, masks: np.asarray(images).astype(np.uint8)
    names = {"telea": "Telea", "ns": "NS"}
    for method in classical:
        if method not in names:
            raise ValueError(f"classical methods are 'telea' and 'ns', got {method!r}")
        methods[names[method]] = (lambda images, masks, _m=method:
                                  classical_inpaint(images, masks, method=_m, radius=radius))
    for name, generator in (generators or {}).items():
        if not hasattr(generator, "predict_on_batch"):
            generator = load_generator(generator)
        methods[name] = generator_inpaint_fn(generator)
    return methods


def inpaint_with(methods, images, masks):
    """Run every method: ``{name: uint8 (N, S, S, 3)}``."""
    return {name: fn(images, masks) for name, fn in methods.items()}


def side_by_side(panels, labels=None, gap=2):
    """Concatenate equally sized RGB images horizontally with a white gap; optional labels.

    Parameters
    ----------
    panels : sequence of (H, W, 3) uint8 arrays
    labels : sequence of str, optional
        Written under each panel (OpenCV Hershey font).
    gap : int
        White pixels between panels.

    Returns
    -------
    uint8 array (H [+ label band], n·W + (n−1)·gap, 3).
    """
    import cv2
    panels = [np.asarray(p, np.uint8) for p in panels]
    h, w = panels[0].shape[:2]
    if any(p.shape[:2] != (h, w) for p in panels):
        raise ValueError("panels must have equal sizes")
    spacer = np.full((h, gap, 3), 255, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [spacer, p]
    out = np.concatenate(row, axis=1)
    if labels:
        band = np.full((16, out.shape[1], 3), 255, np.uint8)
        scale = 0.35 if w < 100 else 0.45
        for i, text in enumerate(labels):
            cv2.putText(band, str(text)[: max(3, w // 7)], (i * (w + gap) + 2, 12),
                        cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        out = np.concatenate([out, band], axis=0)
    return out


def image_quality(filled, truth):
    """Mean PSNR and SSIM (``occface.evaluation``, [0, 255]) over a batch, plus per-image PSNR."""
    from occface.evaluation import psnr, ssim
    p = np.asarray(psnr(filled, truth), np.float64).reshape(-1)
    s = np.asarray(ssim(filled, truth), np.float64).reshape(-1)
    finite = np.isfinite(p)
    return {"psnr": float(p[finite].mean()) if finite.any() else float("inf"),
            "ssim": float(s.mean()), "n_images": int(p.size),
            "n_identical": int((~finite).sum())}


def evaluate_inpainting_pairs(pairs, source, methods, recognizer=None, kind="block", seed=0,
                              occlude="one", flip=False, batch_size=64, examples=0,
                              progress=None, recognizers=None, clean_cache=None):
    """Image quality and occluded-pair verification for every inpainting method.

    Parameters
    ----------
    pairs : occface.evaluation.protocols.PairSet
        Verification pairs (e.g. LFW folds held out from inpainting and recognizer training).
    source : occface.evaluation.protocols.FaceSource
        Gives aligned faces at the inpainting size with their landmarks.
    methods : dict
        From :func:`inpainting_methods`.
    recognizer : keras.Model, EmbeddingModel or path, optional
        Embeds the (filled) faces for verification; without it only PSNR/SSIM are reported.
    kind : str
        Occlusion kind of :func:`occface.data.occlude` (``"block"`` = a ``0.375·S`` square, i.e.
        48×48 on 128×128 faces, at a random position, black).
    seed : int
        Occlusion seed (per image, :func:`occface.evaluation.occlusion.occlude_face`).
    occlude : {"one", "both"}
        Occlude the second face of each pair (clean gallery vs occluded probe) or both.
    flip : bool
        Flip-test embeddings.
    batch_size : int
    examples : int
        Return this many example strips (clean | occluded | each method) under ``"examples"``.
    progress : callable, optional
        ``progress(n)`` after each chunk of occluded faces is processed.
    recognizers : dict, optional
        Name -> recognizer (as ``recognizer``): every filled face is also scored by each of
        them (e.g. evaluators that were not in the generator's loss), under
        ``report["recognizers"][name]`` with the same keys as the single-recognizer report
        (``"clean"`` and per-method verification and identity similarity). The faces are
        occluded and filled once for all of them.
    clean_cache : dict, optional
        Kept by the caller across calls on the same pairs (e.g. one call per occlusion kind):
        the un-occluded faces' embeddings of each of ``recognizers`` are computed once and
        reused (keyed by recognizer name and face keys).

    Returns
    -------
    dict
        ``{"methods": {name: {"psnr", "ssim", ["accuracy", "std", "fold_accuracies", ...,
        "identity_similarity" (mean cosine between the embeddings of each filled face and of the
        same face un-occluded)]}},
        "clean": {verification of the un-occluded pairs} (with a recognizer), "n_pairs",
        "n_occluded_images", "kind", "seed", "occlude", "examples": [uint8 arrays],
        "recognizers": {name: {"clean": ..., "methods": {method: verification}}} (with
        ``recognizers``)}``.
    """
    from occface.evaluation.occlusion import occlude_face, pair_occlusion
    if occlude not in ("one", "both"):
        raise ValueError(f"occlude must be 'one' or 'both', got {occlude!r}")
    occ_a, occ_b = pair_occlusion(len(pairs), occlude)
    occluded_keys = list(dict.fromkeys(
        [k for k, o in zip(pairs.keys_a, occ_a) if o] + [k for k, o in zip(pairs.keys_b, occ_b)
                                                         if o]))
    all_keys = pairs.unique_keys()
    index = {k: i for i, k in enumerate(all_keys)}
    clean = np.stack([source.get(k)[0] for k in all_keys])
    occ_index = np.array([index[k] for k in occluded_keys], np.int64)
    filled = {name: clean.copy() for name in methods}
    truth = clean[occ_index]
    quality_parts = {name: [] for name in methods}
    example_rows = []
    chunk = max(int(batch_size), 1)
    for s in range(0, len(occluded_keys), chunk):
        keys = occluded_keys[s:s + chunk]
        occ_imgs, masks = [], []
        for k in keys:
            img, lmk, _ = source.get(k)
            o, m = occlude_face(img, lmk, kind, seed, key=k)
            occ_imgs.append(o)
            masks.append(m)
        occ_imgs, masks = np.stack(occ_imgs), np.stack(masks)
        outs = inpaint_with(methods, occ_imgs, masks)
        idx = occ_index[s:s + chunk]
        for name, out in outs.items():
            filled[name][idx] = out
        if len(example_rows) < examples:
            for j in range(min(examples - len(example_rows), len(keys))):
                example_rows.append(side_by_side(
                    [clean[idx[j]], occ_imgs[j]] + [outs[n][j] for n in methods],
                    labels=["clean", "occluded"] + list(methods)))
        if progress is not None:
            progress(len(keys))
    report = {"kind": kind, "seed": int(seed), "occlude": occlude, "n_pairs": len(pairs),
              "n_occluded_images": len(occluded_keys), "methods": {}}
    for name in methods:
        report["methods"][name] = image_quality(filled[name][occ_index], truth)
    if recognizer is not None:
        scored, _ = _verify_methods(recognizer, clean, filled, occ_index, index, pairs,
                                    (occ_a, occ_b), flip, batch_size)
        report["clean"] = scored["clean"]
        for name in methods:
            report["methods"][name].update(scored["methods"][name])
    if recognizers:
        cache = {} if clean_cache is None else clean_cache
        report["recognizers"] = {}
        for name, model in recognizers.items():
            key = (name, bool(flip), tuple(all_keys))
            report["recognizers"][name], cache[key] = _verify_methods(
                model, clean, filled, occ_index, index, pairs, (occ_a, occ_b), flip, batch_size,
                emb_clean=cache.get(key))
    if examples:
        report["examples"] = example_rows
    return report


def _verify_methods(recognizer, clean, filled, occ_index, index, pairs, occluded, flip,
                    batch_size, emb_clean=None):
    """Verification of the pairs and identity similarity for each method's filled faces.

    ``clean`` (N, S, S, 3) are the un-occluded faces of ``pairs.unique_keys()`` (row ``index[key]``),
    ``filled[method]`` the same faces with the rows ``occ_index`` filled by that method, and
    ``occluded`` the (occ_a, occ_b) booleans of which side of each pair was occluded.
    ``emb_clean`` are the clean faces' embeddings when already known. Returns ``({"clean":
    verification dict, "methods": {method: verification dict + "identity_similarity"}},
    the clean embeddings)``.
    """
    from occface.evaluation.embedding import as_embedding_model, embed_images
    from occface.evaluation.similarity import pair_scores
    from occface.evaluation.verification import verification_accuracy
    occ_a, occ_b = occluded
    model = as_embedding_model(recognizer)
    a_idx = np.array([index[k] for k in pairs.keys_a])
    b_idx = np.array([index[k] for k in pairs.keys_b])
    if emb_clean is None:
        emb_clean = embed_images(model, clean, batch_size=batch_size, flip=flip)

    def verify(emb_filled):
        emb_a = np.where(occ_a[:, None], emb_filled[a_idx], emb_clean[a_idx])
        emb_b = np.where(occ_b[:, None], emb_filled[b_idx], emb_clean[b_idx])
        return verification_accuracy(pair_scores(emb_a, emb_b), pairs.issame,
                                     pairs.folds).to_dict()

    def unit(e):
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    out = {"clean": verify(emb_clean), "methods": {}}
    truth_unit = unit(emb_clean[occ_index])
    for name, faces in filled.items():
        emb = emb_clean.copy()
        emb[occ_index] = embed_images(model, faces[occ_index], batch_size=batch_size, flip=flip)
        row = verify(emb)
        # identity preservation, what ID-GAN's identity terms aim at: cosine between the
        # embedding of the filled face and that of the same face un-occluded
        row["identity_similarity"] = float(np.mean(np.sum(unit(emb[occ_index]) * truth_unit,
                                                          axis=1)))
        out["methods"][name] = row
    return out, emb_clean


def format_inpainting_table(report):
    """Markdown table: method | PSNR | SSIM | verification accuracy (± std) | cosine to the
    un-occluded face's embedding."""
    has_acc = any("accuracy" in v for v in report["methods"].values())
    head = "| method | PSNR (dB) | SSIM |" + (" accuracy | cos to truth |" if has_acc else "")
    rule = "|---|---:|---:|" + ("---:|---:|" if has_acc else "")
    lines = [head, rule]
    if has_acc and "clean" in report:
        c = report["clean"]
        lines.append(f"| clean (no occlusion) | – | – | {c['accuracy']:.4f} ± {c['std']:.4f} "
                     "| 1 |")
    for name, v in report["methods"].items():
        row = f"| {name} | {v['psnr']:.2f} | {v['ssim']:.4f} |"
        if has_acc:
            row += (f" {v['accuracy']:.4f} ± {v['std']:.4f} | {v['identity_similarity']:.4f} |"
                    if "accuracy" in v else " – | – |")
        lines.append(row)
    return "\n".join(lines)
