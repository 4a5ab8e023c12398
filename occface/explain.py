"""A picture per verdict: what was detected, aligned, found occluded, and relied on.

:func:`explain_pair` runs one verification through a :class:`occface.verify.FaceVerifier` and
collects, for each of the two faces, the photo with the detected box and 5 landmarks, the
aligned face, the occlusion segmenter's mask, (for a cascade export) the inpainted face, and an
**occlusion-sensitivity map of the similarity**: the face is cut into a ``grid × grid`` raster
of cells, each cell in turn is hidden (filled with ``fill``), and the map holds how much the
cosine similarity to the *other* face drops — high where the model relies on that region. All
hidden variants of both faces (plus both intact faces) are embedded in one batched pass.
:func:`render_explanation` draws it all, with the score against the threshold and the verdict,
into one PNG (matplotlib, Agg backend). :func:`explain_ranking` does the same for the top
entries of a gallery ranking (``tools/verify.py --gallery --explain_dir``).
"""
import dataclasses
import pathlib

import numpy as np

DEFAULT_GRID = 8
DEFAULT_FILL = 128          # mid-grey: 0 after the recognizers' Rescaling(1/127.5, offset=-1)
FIGURE_SIZE = (13.0, 6.4)   # inches; at DPI 100 → 1300 × 640 px
DPI = 100
PANELS = ("photo", "aligned", "occlusion", "sensitivity", "inpainted")
"""Panel names, left to right, of each face's row in :func:`render_explanation`."""


@dataclasses.dataclass
class FaceExplanation:
    """What :func:`explain_pair` found about one of the two faces.

    Attributes
    ----------
    face : occface.verify.FaceInput
    photo : np.ndarray, uint8, shape (H, W, 3), RGB — the input photo
    occlusion_prob : np.ndarray or None, float32, shape (112, 112) — the segmenter's occlusion
        probability per pixel (None without a segmenter)
    inpainted : np.ndarray or None, uint8, shape (112, 112, 3) — the face the cascade inpainted
        before embedding (None if it was embedded as aligned)
    sensitivity : np.ndarray, float32, shape (grid, grid) — similarity drop when each cell of the
        embedded face (the inpainted one where there is one) is hidden; cell ``(i, j)`` covers
        rows ``cell_edges[i]:cell_edges[i + 1]`` and the same columns
    """
    face: object
    photo: np.ndarray
    occlusion_prob: np.ndarray
    inpainted: np.ndarray
    sensitivity: np.ndarray

    @property
    def embedded(self):
        """The face that was embedded, uint8 ``(112, 112, 3)``."""
        return self.inpainted if self.inpainted is not None else self.face.aligned


def cell_edges(size, grid):
    """Pixel edges ``(grid + 1,)`` of a ``grid``-cell raster over ``size`` pixels."""
    return np.round(np.linspace(0, size, grid + 1)).astype(int)


def hidden_variants(face, grid=DEFAULT_GRID, fill=DEFAULT_FILL):
    """Copies of ``face`` with one raster cell hidden each.

    Parameters
    ----------
    face : np.ndarray, uint8, shape (S, S, 3)
    grid : int
        Cells per side.
    fill : int or RGB triple
        Value written into the hidden cell.

    Returns
    -------
    np.ndarray, uint8, shape (grid * grid, S, S, 3)
        Variant ``i * grid + j`` has cell ``(i, j)`` (row, column) hidden.
    """
    face = np.asarray(face)
    if face.ndim != 3 or face.shape[-1] != 3:
        raise ValueError(f"face must be (S, S, 3) RGB, got shape {face.shape}")
    if not isinstance(grid, (int, np.integer)) or not 1 <= grid <= min(face.shape[:2]):
        raise ValueError(f"grid must be an integer in [1, {min(face.shape[:2])}], got {grid!r}")
    rows, cols = cell_edges(face.shape[0], grid), cell_edges(face.shape[1], grid)
    out = np.repeat(face[None], grid * grid, axis=0)
    for i in range(grid):
        for j in range(grid):
            out[i * grid + j, rows[i]:rows[i + 1], cols[j]:cols[j + 1]] = fill
    return out


def occlusion_sensitivity(embed, face_a, face_b, grid=DEFAULT_GRID, fill=DEFAULT_FILL):
    """Occlusion sensitivity of the cosine similarity of two faces, both ways, in one pass.

    Parameters
    ----------
    embed : callable
        ``f(faces uint8 (N, S, S, 3)) -> L2-normalised embeddings (N, D)``; called **once**, on
        ``2 + 2 · grid²`` faces.
    face_a, face_b : np.ndarray, uint8, shape (S, S, 3)
    grid, fill
        See :func:`hidden_variants`.

    Returns
    -------
    score : float
        Cosine similarity of the intact faces.
    drops : np.ndarray, float32, shape (2, grid, grid)
        ``drops[0, i, j] = score − cos(f(a with cell (i, j) hidden), f(b))`` and ``drops[1]``
        likewise with ``b``'s cells hidden (against intact ``a``). Positive = the region helped.
    """
    va, vb = hidden_variants(face_a, grid, fill), hidden_variants(face_b, grid, fill)
    batch = np.concatenate([np.asarray(face_a)[None], np.asarray(face_b)[None], va, vb])
    emb = np.asarray(embed(batch), np.float32)
    if emb.shape[0] != len(batch):
        raise ValueError(f"embed returned {emb.shape[0]} embeddings for {len(batch)} faces")
    ea, eb = emb[0], emb[1]
    n = grid * grid
    score = float(ea @ eb)
    drop_a = score - emb[2:2 + n] @ eb
    drop_b = score - emb[2 + n:] @ ea
    return score, np.stack([drop_a, drop_b]).reshape(2, grid, grid).astype(np.float32)


def _inpaint(verifier, face):
    """The cascade export's ``inpaint`` of ``face.aligned`` under its occlusion mask."""
    import tensorflow as tf
    fn = verifier.model.saved_model.signatures["inpaint"]
    mask = face.occlusion_mask.astype(np.float32)[None, ..., None]
    return fn(images=tf.constant(face.aligned[None]), masks=tf.constant(mask))[
        "inpainted"].numpy()[0]


def explain_faces(verifier, faces, grid=DEFAULT_GRID, fill=DEFAULT_FILL):
    """Verify two loaded faces and explain the verdict.

    Parameters
    ----------
    verifier : occface.verify.FaceVerifier
    faces : list of two occface.verify.FaceInput
        From ``verifier.load_face`` (with their landmarks).
    grid, fill
        See :func:`hidden_variants`.

    Returns
    -------
    dict
        ``result``: what :meth:`FaceVerifier.compare` returns; ``faces``: two
        :class:`FaceExplanation`; ``sensitivity_score``: the similarity of the two embedded faces
        as computed for the map (equals ``result["score"]`` up to float error); ``grid``.
    """
    from occface.data import read_image
    from occface.evaluation import embed_images

    result = verifier.compare_faces(faces)
    inpainted = result.get("cascade", {}).get("inpainted", [False, False])
    estimator = verifier.occlusion_estimator
    explained = []
    for face, done in zip(faces, inpainted):
        photo = read_image(face.path)
        photo = np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., ::-1]
        prob = None
        if estimator is not None and hasattr(estimator, "probabilities"):
            prob = np.asarray(estimator.probabilities(face.aligned)[0], np.float32)
        explained.append(FaceExplanation(face, np.ascontiguousarray(photo), prob,
                                         _inpaint(verifier, face) if done else None, None))

    flip = not verifier.metadata.get("flip_test", False)

    def embed(batch):
        emb = embed_images(verifier.model, batch, batch_size=len(batch), flip=flip)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    score, drops = occlusion_sensitivity(embed, explained[0].embedded, explained[1].embedded,
                                         grid, fill)
    for e, d in zip(explained, drops):
        e.sensitivity = d
    return {"result": result, "faces": explained, "sensitivity_score": score, "grid": grid}


def explain_pair(verifier, path_a, path_b, grid=DEFAULT_GRID, fill=DEFAULT_FILL):
    """:func:`explain_faces` for two photo paths (read, detect, align with ``verifier``)."""
    return explain_faces(verifier, [verifier.load_face(path_a), verifier.load_face(path_b)],
                         grid, fill)


def _short(path, n=34):
    name = pathlib.Path(path).name
    return name if len(name) <= n else name[:n - 1] + "…"


def render_explanation(explanation, path, title=None):
    """Draw :func:`explain_pair`'s explanation into one PNG.

    Layout: one row per face with the panels of :data:`PANELS` — the photo with the detected
    box (green) and 5 landmarks (eyes blue, nose yellow, mouth corners magenta); the aligned
    112×112 face; the segmenter's occlusion mask in red over the face; the sensitivity map over
    the embedded face (hot = hiding that region costs similarity); the inpainted face (cascade
    exports only). Beneath, the similarity on a [−1, 1] axis against the threshold, and the
    verdict.

    Parameters
    ----------
    explanation : dict from :func:`explain_pair`
    path : str or path
        PNG to write (folders are created).
    title : str, optional
        Headline; default: the verdict with score and threshold.

    Returns
    -------
    dict
        ``path``; ``size`` ``(width, height)`` in pixels; ``panels``: ``{(row, name): (x0, y0,
        x1, y1)}`` pixel box of each image panel's drawn image (row 0 = face A), ``None`` for a
        panel left empty; ``gauge``: the score axis' pixel box.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patches

    result, faces = explanation["result"], explanation["faces"]
    grid = explanation["grid"]
    score, threshold, same = result["score"], result["threshold"], bool(result["same"])
    verdict = "SAME person" if same else "DIFFERENT people"
    colour = "#1a7f37" if same else "#cf222e"
    vmax = max(float(max(f.sensitivity.max() for f in faces)), 1e-6)

    fig = plt.figure(figsize=FIGURE_SIZE, dpi=DPI)
    spec = fig.add_gridspec(3, len(PANELS), height_ratios=[1, 1, 0.28], hspace=0.32,
                            wspace=0.08, left=0.02, right=0.98, top=0.9, bottom=0.06)
    fig.suptitle(title or f"{verdict}: similarity {score:.3f} "
                 f"{'≥' if same else '<'} threshold {threshold:.3f}",
                 color=colour, fontsize=15, fontweight="bold")
    axes = {}
    for row, e in enumerate(faces):
        face = e.face
        ax = fig.add_subplot(spec[row, 0])
        ax.imshow(e.photo)
        x, y, w, h = face.box
        ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor="#2da44e", lw=2))
        if face.landmarks is not None:
            lm = np.asarray(face.landmarks)
            ax.scatter(lm[:, 0], lm[:, 1], s=18, c=["#0969da", "#0969da", "#d4a72c", "#bf3989",
                                                    "#bf3989"], edgecolors="white", lw=0.6)
        ax.set_title(f"{'AB'[row]}: {_short(face.path)}\n"
                     f"face {int(round(w))}×{int(round(h))} px, det {face.score:.2f}", fontsize=8)
        axes[(row, "photo")] = ax

        ax = fig.add_subplot(spec[row, 1])
        ax.imshow(face.aligned)
        ax.set_title("aligned 112×112", fontsize=8)
        axes[(row, "aligned")] = ax

        ax = fig.add_subplot(spec[row, 2])
        if e.occlusion_prob is not None:
            mask = (e.occlusion_prob > 0.5).astype(np.float32)[..., None]
            red = np.array([230, 30, 30], np.float32)
            shown = face.aligned * (1 - 0.6 * mask) + red * 0.6 * mask
            ax.imshow(shown.astype(np.uint8))
            occ = face.occlusion or {}
            text = (f"occluded: {occ.get('kind', '?')}" if occ.get("occluded")
                    else "not occluded")
            ax.set_title(f"segmenter: {text}\n{100 * float(mask.mean()):.0f} % of the face",
                         fontsize=8)
            axes[(row, "occlusion")] = ax
        else:
            ax.text(0.5, 0.5, "no occlusion\nsegmenter", ha="center", va="center", fontsize=9)
            axes[(row, "occlusion")] = None

        ax = fig.add_subplot(spec[row, 3])
        side = e.embedded.shape[0]
        ax.imshow(e.embedded, extent=(0, side, side, 0))
        ax.imshow(np.clip(e.sensitivity, 0, None), cmap="inferno", vmin=0, vmax=vmax,
                  alpha=0.6, interpolation="nearest", extent=(0, side, side, 0))
        i, j = np.unravel_index(int(np.argmax(e.sensitivity)), e.sensitivity.shape)
        edges = cell_edges(side, grid)
        ax.add_patch(patches.Rectangle((edges[j], edges[i]), edges[j + 1] - edges[j],
                                       edges[i + 1] - edges[i], fill=False, edgecolor="cyan",
                                       lw=1.5))
        ax.set_xlim(0, side)
        ax.set_ylim(side, 0)
        ax.set_title(f"score drop when hidden ({grid}×{grid})\nmax {e.sensitivity.max():+.3f} "
                     "(cyan)", fontsize=8)
        axes[(row, "sensitivity")] = ax

        ax = fig.add_subplot(spec[row, 4])
        if e.inpainted is not None:
            ax.imshow(e.inpainted)
            ax.set_title("inpainted (ID-GAN) before embedding", fontsize=8)
            axes[(row, "inpainted")] = ax
        else:
            cascade = "cascade" in result
            ax.text(0.5, 0.5, "embedded as aligned" if cascade else "no inpainting\n"
                    "(not a cascade model)", ha="center", va="center", fontsize=9,
                    color="#57606a")
            axes[(row, "inpainted")] = None
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)

    gauge = fig.add_subplot(spec[2, :])
    gauge.set_xlim(-1, 1)
    gauge.set_ylim(0, 1)
    gauge.axvspan(-1, threshold, ymin=0.35, ymax=0.65, color="#ffebe9")
    gauge.axvspan(threshold, 1, ymin=0.35, ymax=0.65, color="#dafbe1")
    gauge.axvline(threshold, ymin=0.2, ymax=0.8, color="black", lw=1.5)
    gauge.text(threshold, 0.9, f"threshold {threshold:.3f}", ha="center", va="bottom",
               fontsize=8)
    gauge.plot([score], [0.5], marker="v", markersize=13, color=colour)
    gauge.text(score + 0.025, 0.5, f"{score:.3f}", ha="left", va="center", fontsize=10,
               color=colour, fontweight="bold")
    gauge.set_yticks([])
    gauge.tick_params(axis="x", labelsize=7)
    gauge.set_xlabel("cosine similarity", fontsize=8)
    for s in ("left", "right", "top"):
        gauge.spines[s].set_visible(False)

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()

    def box(ax):
        if ax is None:
            return None
        if ax.images:  # the drawn image's extent, not the axes' (aspect-ratio padding)
            bb = ax.images[0].get_window_extent()
        else:
            bb = ax.get_window_extent()
        return (int(round(bb.x0)), int(round(height - bb.y1)), int(round(bb.x1)),
                int(round(height - bb.y0)))

    layout = {"path": str(path), "size": (width, height),
              "panels": {k: box(a) for k, a in axes.items()},
              "gauge": box(gauge)}
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return layout


def explain_ranking(verifier, probe_path, ranking, out_dir, grid=DEFAULT_GRID,
                    fill=DEFAULT_FILL):
    """One PNG per gallery entry of a :meth:`FaceVerifier.rank` result (probe vs its image).

    Parameters
    ----------
    verifier : occface.verify.FaceVerifier
    probe_path : str or path
    ranking : dict from :meth:`FaceVerifier.rank`
    out_dir : str or path
        Written as ``rank{k:02d}_{identity}.png`` (``k`` from 1).
    grid, fill
        See :func:`hidden_variants`.

    Returns
    -------
    list of str
        The PNG paths, best rank first.
    """
    out_dir = pathlib.Path(out_dir)
    probe = verifier.load_face(probe_path)
    paths = []
    for k, row in enumerate(ranking["ranking"], 1):
        fresh = dataclasses.replace(probe, notes=list(probe.notes))  # compare adds notes
        explanation = explain_faces(verifier, [fresh, verifier.load_face(row["image"])],
                                    grid, fill)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row["identity"])
        title = (f"rank {k}: {row['identity']} — "
                 f"{'match' if explanation['result']['same'] else 'no match'}, similarity "
                 f"{explanation['result']['score']:.3f} (threshold "
                 f"{explanation['result']['threshold']:.3f})")
        paths.append(render_explanation(explanation, out_dir / f"rank{k:02d}_{safe}.png",
                                        title=title)["path"])
    return paths
