"""Face detection with OpenCV's YuNet (``cv2.FaceDetectorYN``); the ONNX model ships in the package."""

import dataclasses
import logging
import pathlib

import cv2
import numpy as np

from occface.paths import ASSETS_DIR

log = logging.getLogger(__name__)

YUNET_MODEL = ASSETS_DIR / "yunet" / "face_detection_yunet_2023mar.onnx"

try:  # OpenCV 5 warns about backend targets on every net creation; keep the console clean.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - older OpenCV builds
    pass


class NoFaceError(ValueError):
    """Raised when no face is found in an image (``"no face found in <path>"``)."""


@dataclasses.dataclass
class Face:
    """One detected face.

    Attributes
    ----------
    box : np.ndarray, float32, shape (4,)
        ``x, y, w, h`` of the face box in image pixels.
    landmarks : np.ndarray, float32, shape (5, 2)
        ``(x, y)`` of: the eye on the image's left (subject's right eye), the eye on the image's
        right, the nose tip, the mouth corner on the image's left, the mouth corner on the image's
        right. This is the order of the ArcFace template (:func:`occface.data.template_landmarks`).
    score : float
        Detector confidence in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def area(self):
        return float(self.box[2] * self.box[3])

    @property
    def center(self):
        return np.array([self.box[0] + self.box[2] / 2, self.box[1] + self.box[3] / 2], np.float32)

    def scaled(self, factor):
        """This face with coordinates multiplied by ``factor``."""
        return Face(self.box * factor, self.landmarks * factor, self.score)


def _as_bgr(image):
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                     f"got {image.shape}")


def order_faces(faces, image_shape, pick="score"):
    """Sort faces so that the preferred one comes first.

    Parameters
    ----------
    faces : list of Face
    image_shape : tuple
        ``(H, W, ...)`` of the image the faces were found in.
    pick : {"score", "largest", "central"}
        ``"score"``: by detector score (highest first). ``"largest"``: by box area.
        ``"central"``: among faces at least a quarter the area of the largest one, the one whose
        box centre is nearest the image centre comes first (then the rest by distance); this picks
        the subject of centred photos such as LFW over large background faces at the border and
        over tiny faces near the centre.
    """
    if not faces:
        return []
    if pick == "score":
        return sorted(faces, key=lambda f: -f.score)
    if pick == "largest":
        return sorted(faces, key=lambda f: (-f.area, -f.score))
    if pick == "central":
        h, w = image_shape[:2]
        centre = np.array([w / 2, h / 2], np.float32)
        biggest = max(f.area for f in faces)

        def key(f):
            small = f.area < 0.25 * biggest
            return (small, float(np.linalg.norm(f.center - centre)), -f.area)
        return sorted(faces, key=key)
    raise ValueError(f"pick must be 'score', 'largest' or 'central', got {pick!r}")


class FaceDetector:
    """YuNet face detector (box + 5 landmarks) via ``cv2.FaceDetectorYN``.

    Parameters
    ----------
    model_path : str or path, optional
        ONNX model; defaults to the YuNet 2023mar model shipped in ``occface/assets/yunet``.
    score_threshold : float
        Faces scoring below this are dropped.
    nms_threshold : float
        IoU threshold of the detector's non-maximum suppression.
    top_k : int
        Candidates kept before NMS.
    max_side : int or None
        Images whose longer side exceeds this are downscaled for detection (results are mapped
        back to the original pixels); keeps detection fast on large photos.
    pad : float
        If no face is found, retry once on the image padded by this fraction of its size on every
        side (helps tight crops where the face fills the frame); 0 disables the retry.

    Notes
    -----
    Instances are cheap to pickle (the OpenCV object is re-created lazily), so a detector can be
    handed to worker processes. One instance must not be used from several threads at once.
    """

    def __init__(self, model_path=None, score_threshold=0.6, nms_threshold=0.3, top_k=5000,
                 max_side=640, pad=0.25):
        self.model_path = pathlib.Path(model_path) if model_path is not None else YUNET_MODEL
        if not self.model_path.is_file():
            raise FileNotFoundError(f"face detector model not found: {self.model_path}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = max_side
        self.pad = float(pad)
        self._net = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_net"] = None
        return state

    def _detector(self, width, height):
        if self._net is None:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (int(width), int(height)), self.score_threshold,
                self.nms_threshold, self.top_k)
        self._net.setInputSize((int(width), int(height)))
        return self._net

    def _detect_raw(self, bgr):
        h, w = bgr.shape[:2]
        scale = 1.0
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA)
        hh, ww = bgr.shape[:2]
        _, rows = self._detector(ww, hh).detect(bgr)
        faces = []
        if rows is not None:
            for row in rows:
                face = Face(np.asarray(row[0:4], np.float32),
                            np.asarray(row[4:14], np.float32).reshape(5, 2), float(row[14]))
                faces.append(face.scaled(1.0 / scale) if scale != 1.0 else face)
        return faces

    def detect(self, image_bgr, pick="score"):
        """Detect faces.

        Parameters
        ----------
        image_bgr : np.ndarray, uint8, shape (H, W, 3) BGR (as read by ``cv2.imread``)
            Grey ``(H, W)`` and BGRA images are accepted too.
        pick : {"score", "largest", "central"}
            Order of the result (see :func:`order_faces`): ``detect(img, pick="central")[0]`` is
            the most central large face.

        Returns
        -------
        list of Face
            Possibly empty.
        """
        bgr = _as_bgr(image_bgr)
        faces = self._detect_raw(bgr)
        if not faces and self.pad > 0:
            h, w = bgr.shape[:2]
            py, px = int(round(h * self.pad)), int(round(w * self.pad))
            padded = cv2.copyMakeBorder(bgr, py, py, px, px, cv2.BORDER_CONSTANT, value=0)
            faces = self._detect_raw(padded)
            offset = np.array([px, py], np.float32)
            faces = [Face(f.box - np.concatenate([offset, [0, 0]]).astype(np.float32),
                          f.landmarks - offset, f.score) for f in faces]
        return order_faces(faces, bgr.shape, pick)

    def best_face(self, image_bgr, pick="central"):
        """The preferred face of :meth:`detect` (``pick`` as there), or ``None`` if none."""
        faces = self.detect(image_bgr, pick=pick)
        return faces[0] if faces else None


_DEFAULT = {}


def default_detector():
    """A process-wide :class:`FaceDetector` with default settings (created on first use)."""
    if "det" not in _DEFAULT:
        _DEFAULT["det"] = FaceDetector()
    return _DEFAULT["det"]
