"""Verify two face photos (or rank a probe against a gallery) with a trained or exported model.

This is the library behind ``tools/verify.py``: read the files, detect (YuNet), align onto the
ArcFace 112×112 template, embed, score by cosine similarity and decide at the model's stored
threshold. Everything a person would want to know about the inputs — several faces, a tiny face,
no face, an unreadable file, an occluded face — is reported, not hidden.
"""

import dataclasses
import json
import os
import pathlib

import numpy as np

from occface.data.folders import IMAGE_EXTENSIONS
from occface.paths import REPO_ROOT

ALIGNED_SIZE = 112
TINY_FACE_PX = 40          # below this (box's shorter side, in pixels) the result is unreliable
MIN_FACE_PX = 12           # below this there is no usable face at all
DEFAULT_MODEL = REPO_ROOT / "saved_models" / "arcface_mbf_occ_ft"
"""The best shipped recognizer (insightface's ArcFace MobileFaceNet fine-tuned for occlusion).
Its weights derive from insightface's: non-commercial research use only (its MODEL_CARD.md).
:data:`DEMO_MODEL` is the fully occface-trained, unencumbered alternative."""
DEMO_MODEL = REPO_ROOT / "saved_models" / "lcd_ir18_w16_lfw"


@dataclasses.dataclass
class FaceInput:
    """One input photo after detection and alignment.

    Attributes
    ----------
    path : str
    aligned : np.ndarray, uint8, shape (112, 112, 3), RGB
    box : np.ndarray, float32, shape (4,)  — x, y, w, h in the original image
    score : float — detector confidence
    num_faces : int — faces found in the photo (the most central large one is used)
    notes : list of str — human-readable remarks (several faces, tiny face, occlusion, ...)
    occlusion : dict or None — output of the occlusion estimate, if one was run
    occlusion_mask : np.ndarray or None, uint8, shape (112, 112) — 1 = occluded (when the
        estimator gives masks and found the face occluded); a cascade export inpaints it
    landmarks : np.ndarray or None, float32, shape (5, 2) — detected landmarks (x, y) in the
        original image, in the ArcFace template's order
    """
    path: str
    aligned: np.ndarray
    box: np.ndarray
    score: float
    num_faces: int
    notes: list
    occlusion: dict = None
    occlusion_mask: np.ndarray = dataclasses.field(default=None, repr=False)
    landmarks: np.ndarray = dataclasses.field(default=None, repr=False)

    def describe(self):
        x, y, w, h = (int(round(v)) for v in self.box)
        text = f"{self.path}: face {w}x{h} px at ({x},{y}), detector score {self.score:.2f}"
        return text + "".join(f"; {n}" for n in self.notes)


class FaceVerifier:
    """Detect, align, embed and compare faces with one recognizer.

    Parameters
    ----------
    model : str or path, optional
        An exported SavedModel (base path with numbered versions, or one version directory; its
        stored threshold is used), a ``.keras`` file, or a training ``model_dir``. Defaults to
        :data:`DEFAULT_MODEL` (non-commercial research licence; :data:`DEMO_MODEL` is the
        unencumbered choice).
    threshold : float, optional
        Overrides the stored decision threshold (cosine similarity, in [-1, 1]; else
        ``ValueError``).
    detector : occface.data.FaceDetector, optional
    occlusion_estimator : callable, optional
        ``f(aligned_rgb (112, 112, 3)) -> dict`` with at least ``{"occluded": bool, "kind": str}``.
    """

    def __init__(self, model=None, threshold=None, detector=None, occlusion_estimator=None):
        from occface.data import FaceDetector
        from occface.models.io import load_embedding_model, resolve_model_path

        if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")

        path = pathlib.Path(model) if model is not None else DEFAULT_MODEL
        where = resolve_model_path(path)  # the one path rule of occface.models.io
        self.metadata = where.metadata
        self.model_path = where.path if where.format == "savedmodel" else path
        #: the weights' terms where the export records them (e.g. models derived from
        #: insightface's: non-commercial research use only), else None
        self.licence = self.metadata.get("licence")
        self.model = load_embedding_model(path)
        stored = self.metadata.get("threshold")
        if stored is None and where.model_dir is not None \
                and (where.model_dir / "config.json").is_file():
            stored = json.loads((where.model_dir / "config.json").read_text()).get("threshold")
        if threshold is None and stored is None:
            raise ValueError(f"model {path} stores no decision threshold; pass one "
                             "(--threshold)")
        self.threshold = float(threshold if threshold is not None else stored)
        self.threshold_info = self.metadata.get("calibration", {}) if threshold is None else \
            {"source": "given by the user"}
        self.detector = detector or FaceDetector()
        self.occlusion_estimator = occlusion_estimator
        self._verify_masked = None
        if self.metadata.get("kind") == "cascade":  # occlusion-aware: inpaint first where it helps
            self._verify_masked = self.model.saved_model.signatures["verify_masked"]

    @property
    def is_cascade(self):
        """Whether the model is a cascade export (occluded faces go through ``verify_masked``)."""
        return self._verify_masked is not None

    # ---------------------------------------------------------------------------------------
    def load_face(self, path):
        """Read, detect and align the preferred face of one photo.

        Raises
        ------
        FileNotFoundError, ValueError
            Missing or unreadable file (the message names it).
        occface.data.NoFaceError
            No face, or only faces too small to use.
        """
        from occface.data import NoFaceError, align_face, read_image

        image = read_image(path)
        faces = self.detector.detect(image, pick="central")
        if not faces:
            raise NoFaceError(f"no face found in {path}")
        face = faces[0]
        side = float(min(face.box[2], face.box[3]))
        if side < MIN_FACE_PX:
            raise NoFaceError(f"the only face found in {path} is {side:.0f} px wide; too small "
                              "to recognise")
        notes = []
        if len(faces) > 1:
            notes.append(f"{len(faces)} faces found, used the most central one")
        if side < TINY_FACE_PX:
            notes.append(f"tiny face ({side:.0f} px): the result is unreliable")
        if image.ndim == 2:
            import cv2
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        aligned = align_face(image, face.landmarks, ALIGNED_SIZE)[..., ::-1].copy()  # BGR -> RGB
        occlusion, mask = None, None
        if self.occlusion_estimator is not None:
            if hasattr(self.occlusion_estimator, "estimate"):  # gives the pixel mask too
                occlusion, mask = self.occlusion_estimator.estimate(aligned)
            else:
                occlusion = self.occlusion_estimator(aligned)
            if occlusion.get("occluded"):
                notes.append(f"face appears occluded ({occlusion.get('kind', 'unknown')})")
            else:
                mask = None
        return FaceInput(str(path), aligned, face.box, float(face.score), len(faces), notes,
                         occlusion, mask, landmarks=np.asarray(face.landmarks, np.float32))

    def embed(self, aligned_faces):
        """L2-normalised embeddings ``(N, D)`` of aligned uint8 faces ``(N, 112, 112, 3)``."""
        from occface.evaluation import embed_images
        flip = not self.metadata.get("flip_test", False)  # exports flip inside their graph
        emb = embed_images(self.model, np.asarray(aligned_faces), flip=flip)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def compare(self, path_a, path_b):
        """Verify two photos.

        Returns
        -------
        dict
            ``score`` (cosine similarity), ``threshold``, ``same`` (bool), ``faces`` (two
            :class:`FaceInput` descriptions), ``model``.
        """
        return self.compare_faces([self.load_face(path_a), self.load_face(path_b)])

    def compare_faces(self, faces):
        """:meth:`compare` for two already loaded :class:`FaceInput` (``load_face``)."""
        cascade = None
        if self._uses_cascade(faces):
            score = float(self._cascade_scores([faces[0]], [faces[1]])[0])
            cascade = self._cascade_notes(faces)
        else:
            emb = self.embed(np.stack([f.aligned for f in faces]))
            score = float(np.dot(emb[0], emb[1]))
        result = {
            "score": score,
            "threshold": self.threshold,
            "same": score >= self.threshold,
            "faces": [_face_json(f) for f in faces],
            "model": str(self.model_path), "licence": self.licence,
            "threshold_info": self.threshold_info,
        }
        if cascade is not None:
            result["cascade"] = cascade
        return result

    def _uses_cascade(self, faces):
        return self.is_cascade and any(f.occlusion_mask is not None for f in faces)

    def _cascade_scores(self, faces_a, faces_b, batch_size=32):
        """Cosine scores ``(N,)`` of the pairs ``(faces_a[i], faces_b[i])`` through the export's
        ``verify_masked``, which inpaints an occluded face first where the stored policy says so.
        """
        import tensorflow as tf
        scores = []
        for start in range(0, len(faces_b), batch_size):
            a, b = faces_a[start:start + batch_size], faces_b[start:start + batch_size]
            out = self._verify_masked(
                faces_a=tf.constant(np.stack([f.aligned for f in a])),
                faces_b=tf.constant(np.stack([f.aligned for f in b])),
                masks_a=tf.constant(_masks(a)), masks_b=tf.constant(_masks(b)))
            scores.append(out["scores"].numpy())
        return np.concatenate(scores)

    def _cascade_notes(self, faces):
        """What the cascade did with each face: notes on the occluded ones, and
        ``{"inpainted": [bool], "regions": [str], "policy": {region: bool}}``."""
        import tensorflow as tf
        from occface.serving.cascade import (OCCLUSION_REGIONS, occlusion_region,
                                             stored_inpaint_policy)
        masks = _masks(faces)
        policy = stored_inpaint_policy(self.metadata)
        regions = [OCCLUSION_REGIONS[int(r)] for r in occlusion_region(tf.constant(masks))]
        inpainted = [bool(masks[i].max() > 0.5 and policy[regions[i]]) for i in range(len(faces))]
        for face, region, done in zip(faces, regions, inpainted):
            if face.occlusion_mask is not None:
                face.notes.append(f"cascade: {region}-face occlusion, "
                                  + ("inpainted with ID-GAN before embedding" if done else
                                     "embedded directly (measured better for this region)"))
        return {"inpainted": inpainted, "regions": regions, "policy": policy}

    def rank(self, probe_path, gallery_dir, top_k=5, progress=None):
        """Rank the people of a gallery folder by similarity to a probe photo.

        ``gallery_dir`` holds one sub-folder per person (any number of photos each) or loose
        photos (each its own entry, named by the file stem). A person's score is the best score
        over their photos. Photos without a usable face are skipped and listed. With a cascade
        export and an occluded probe or gallery face, every pair is scored through
        ``verify_masked``, as :meth:`compare` does.

        Returns
        -------
        dict
            ``ranking``: list of ``{"identity", "score", "image", "same"}`` (best first, at most
            ``top_k``); ``skipped``: list of ``{"path", "reason"}``; ``probe``: face description;
            ``cascade`` (when the cascade was used): ``{"policy", "probe_inpainted",
            "gallery_inpainted": [image paths]}``.
        """
        from occface.data import NoFaceError

        gallery_dir = pathlib.Path(gallery_dir)
        if not gallery_dir.is_dir():
            raise FileNotFoundError(f"gallery folder not found: {gallery_dir}")
        entries = []
        for item in sorted(gallery_dir.iterdir()):
            if item.is_dir():
                entries += [(item.name, p) for p in sorted(item.iterdir())
                            if p.suffix.lower() in IMAGE_EXTENSIONS]
            elif item.suffix.lower() in IMAGE_EXTENSIONS:
                entries.append((item.stem, item))
        if not entries:
            raise ValueError(f"gallery folder {gallery_dir} holds no images")
        probe = self.load_face(probe_path)
        faces, names, paths, skipped = [], [], [], []
        for name, path in entries:
            try:
                face = self.load_face(path)
            except (ValueError, OSError) as err:  # NoFaceError is a ValueError
                skipped.append({"path": str(path), "reason": str(err)})
            else:
                faces.append(face)
                names.append(name)
                paths.append(str(path))
            if progress is not None:
                progress.update(1)
        if not faces:
            raise NoFaceError(f"no usable face in any image of {gallery_dir}")
        cascade = None
        if self._uses_cascade([probe] + faces):
            scores = self._cascade_scores([probe] * len(faces), faces)
            done = self._cascade_notes([probe] + faces)
            cascade = {"policy": done["policy"], "probe_inpainted": done["inpainted"][0],
                       "gallery_inpainted": [p for p, d in zip(paths, done["inpainted"][1:]) if d]}
        else:
            emb = self.embed(np.stack([probe.aligned] + [f.aligned for f in faces]))
            scores = emb[1:] @ emb[0]
        best = {}
        for name, path, score in zip(names, paths, scores):
            if name not in best or score > best[name][0]:
                best[name] = (float(score), path)
        order = sorted(best.items(), key=lambda kv: -kv[1][0])[:top_k]
        ranking = [{"identity": n, "score": s, "image": p, "same": s >= self.threshold}
                   for n, (s, p) in order]
        result = {"probe": _face_json(probe), "ranking": ranking, "skipped": skipped,
                  "threshold": self.threshold, "model": str(self.model_path),
                  "licence": self.licence}
        if cascade is not None:
            result["cascade"] = cascade
        return result


def _masks(faces):
    """Float masks ``(N, 112, 112, 1)`` of loaded faces, zero where no occlusion was found."""
    masks = np.zeros((len(faces), ALIGNED_SIZE, ALIGNED_SIZE, 1), np.float32)
    for i, face in enumerate(faces):
        if face.occlusion_mask is not None:
            masks[i, ..., 0] = face.occlusion_mask
    return masks


def _face_json(face):
    return {"path": face.path, "box": [float(v) for v in face.box], "score": face.score,
            "num_faces": face.num_faces, "notes": list(face.notes),
            "occlusion": face.occlusion, "description": face.describe()}


def gallery_size(gallery_dir):
    """Number of images a :meth:`FaceVerifier.rank` call will read (for a progress bar)."""
    n = 0
    for root, _, files in os.walk(gallery_dir):
        n += sum(os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS for f in files)
    return n
