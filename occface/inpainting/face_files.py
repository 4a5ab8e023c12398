"""Face files -> inpainted side-by-side strips (the images mode of ``tools/inpaint.py``).

:func:`prepare_faces` reads faces (aligned or detected) with given hole masks or a synthetic
occlusion, :func:`inpaint_faces` fills them with every method of
:func:`occface.inpainting.evaluate.inpainting_methods`, :func:`faces_report` gives PSNR/SSIM where
a ground truth exists and :func:`face_strip` draws ``input | outputs | truth``.
"""

import logging

import numpy as np

from occface.inpainting.evaluate import image_quality, inpaint_with, side_by_side

log = logging.getLogger(__name__)

__all__ = ["read_mask", "prepare_faces", "inpaint_faces", "faces_report", "face_strip"]


def read_mask(path, size):
    """A hole mask from an image file: any non-zero pixel is hole. ``uint8 (size, size)`` in {0, 1}.

    Resized to ``size`` with nearest neighbour (alpha channel used when present).
    """
    import cv2
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        import pathlib
        if not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"mask not found: {path}")
        raise ValueError(f"cannot decode mask image {path}")
    if data.ndim == 3:
        data = data[..., 3] if data.shape[2] == 4 else data.max(axis=2)
    mask = (data > 0).astype(np.uint8)
    if mask.shape != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return mask


def prepare_faces(image_paths, size, align=False, mask_paths=None, occlusion="block", seed=0):
    """Faces to inpaint, with either given masks or a synthetic occlusion.

    Parameters
    ----------
    image_paths : sequence of path
    size : int
        Side of the faces (the generator's input size).
    align : bool
        Detect and align each face (YuNet + the ArcFace template scaled to ``size``); otherwise
        the files are taken as aligned faces and resized.
    mask_paths : sequence of path, optional
        One mask per image (non-zero = hole), for already aligned faces with real occluders;
        the image is inpainted as it is and there is no ground truth.
    occlusion : str
        Without masks: the :func:`occface.data.occlude` kind applied to the clean face
        (reproducible per file name and ``seed``: the same holes wherever the file lies); the
        clean face is kept as ground truth.

    Returns
    -------
    list of dict
        ``{"name", "input" uint8 (S, S, 3), "mask" uint8 (S, S), "truth" uint8 or None}``.
    """
    import pathlib
    import cv2
    from occface.data import load_aligned_face, read_image, template_landmarks
    from occface.evaluation.occlusion import occlude_face
    if mask_paths is not None:
        if align:
            raise ValueError("masks are given in the coordinates of aligned faces: drop align "
                             "(or occlude synthetically)")
        if len(mask_paths) != len(image_paths):
            raise ValueError(f"{len(image_paths)} images but {len(mask_paths)} masks")
    out = []
    for i, path in enumerate(image_paths):
        path = pathlib.Path(path)
        if align:
            face, landmarks, found = load_aligned_face(path, size=size)
            if not found:
                log.warning("no face detected in %s: using a centre crop", path)
        else:
            bgr = read_image(path)
            if bgr.shape[:2] != (size, size):
                interp = cv2.INTER_AREA if bgr.shape[0] > size else cv2.INTER_LINEAR
                bgr = cv2.resize(bgr, (size, size), interpolation=interp)
            face, landmarks = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), template_landmarks(size)
        if mask_paths is not None:
            mask = read_mask(mask_paths[i], size)
            out.append({"name": path.stem, "input": face, "mask": mask, "truth": None})
        else:
            occluded, mask = occlude_face(face, landmarks, occlusion, seed, key=path.name)
            out.append({"name": path.stem, "input": occluded, "mask": mask, "truth": face})
    return out


def inpaint_faces(faces, methods):
    """Fill every face with every method; adds ``"outputs": {name: uint8 (S, S, 3)}``."""
    if not faces:
        return faces
    images = np.stack([f["input"] for f in faces])
    masks = np.stack([f["mask"] for f in faces])
    results = inpaint_with(methods, images, masks)
    for i, face in enumerate(faces):
        face["outputs"] = {name: out[i] for name, out in results.items()}
    return faces


def faces_report(faces):
    """PSNR/SSIM per method over the faces that have a ground truth (``{}`` if none)."""
    known = [f for f in faces if f.get("truth") is not None]
    if not known:
        return {}
    truth = np.stack([f["truth"] for f in known])
    return {name: image_quality(np.stack([f["outputs"][name] for f in known]), truth)
            for name in known[0]["outputs"]}


def face_strip(face):
    """``input | method outputs ... | truth`` for one face from :func:`inpaint_faces`."""
    panels = [face["input"]] + list(face["outputs"].values())
    labels = ["input"] + list(face["outputs"])
    if face.get("truth") is not None:
        panels.append(face["truth"])
        labels.append("truth")
    return side_by_side(panels, labels)
