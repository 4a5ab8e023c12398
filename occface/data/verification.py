"""insightface verification ``.bin`` files (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...).

A ``.bin`` file is a pickle of ``(bins, issame_list)``: ``bins`` a list of ``2P`` encoded images
(JPEG/PNG bytes; sometimes numpy uint8 arrays of those bytes) and ``issame_list`` ``P`` booleans.
Pickles can run arbitrary code when loaded, so they are read with a restricted unpickler that only
builds bytes, lists, tuples, bools, numbers and numpy arrays.
"""

import io
import logging
import pathlib
import pickle

import cv2
import numpy as np

log = logging.getLogger(__name__)

# (module, name) pairs a verification pickle may reference: numpy array / scalar reconstruction
# and the bytes helpers protocol-2 pickles use. Nothing here can execute code or touch files.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("builtins", "bytes"), ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, name):
        super().__init__(file, encoding="bytes")
        self._name = name

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"{self._name}: refused to unpickle global '{module}.{name}': verification .bin files "
            f"may only contain bytes, lists, tuples, bools and numpy arrays")


def restricted_loads(data, name="<bytes>"):
    """Unpickle ``data`` allowing only bytes/lists/tuples/bools/numbers/numpy arrays.

    Raises
    ------
    pickle.UnpicklingError
        Naming the refused global (e.g. ``'os.system'``).
    """
    return _RestrictedUnpickler(io.BytesIO(data), name).load()


def _to_bytes(item, name, i):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
        return item.tobytes()
    raise ValueError(f"{name}: image {i} is a {type(item).__name__}, expected encoded image bytes")


def read_verification_bin(path):
    """Read a ``.bin`` file without decoding the images.

    Returns
    -------
    (list of bytes, np.ndarray of bool (P,))
        The ``2P`` encoded images and the ``P`` same-identity flags.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"verification .bin file not found: {path}")
    try:
        obj = restricted_loads(path.read_bytes(), str(path))
    except pickle.UnpicklingError as e:
        if str(path) in str(e):  # our refusal, already naming the file
            raise
        raise ValueError(f"{path}: not a verification .bin pickle ({e})") from e
    except Exception as e:  # truncated or not a pickle at all
        raise ValueError(f"{path}: not a verification .bin pickle ({type(e).__name__}: {e})") from e
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise ValueError(f"{path}: expected a pickled (bins, issame_list) pair, got "
                         f"{type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)):
        raise ValueError(f"{path}: bins is a {type(bins).__name__}, expected a list")
    issame = np.asarray(issame)
    if issame.ndim != 1 or not (issame.dtype == bool or np.issubdtype(issame.dtype, np.integer)):
        raise ValueError(f"{path}: issame_list must be a 1-D list of bools")
    if len(bins) != 2 * len(issame):
        raise ValueError(f"{path}: {len(bins)} images for {len(issame)} pairs (expected "
                         f"{2 * len(issame)})")
    return [_to_bytes(b, path, i) for i, b in enumerate(bins)], issame.astype(bool)


def load_verification_bin(path, image_size=None):
    """Load an insightface verification ``.bin`` file.

    Parameters
    ----------
    path : str or path
    image_size : int or (int, int), optional
        Resize every image to this (square side or ``(height, width)``); by default all images
        must already share one size (112x112 in insightface's files).

    Returns
    -------
    images : np.ndarray, uint8, shape (2P, H, W, 3)
        RGB; pair ``p`` is ``images[2p], images[2p + 1]``.
    issame : np.ndarray, bool, shape (P,)

    Raises
    ------
    pickle.UnpicklingError
        The pickle references anything but the allowed types (message names the global).
    ValueError
        Wrong structure, or an image that does not decode (message names the index).
    """
    encoded, issame = read_verification_bin(path)
    images = None
    for i, data in enumerate(encoded):
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: image {i} does not decode")
        if image_size is not None:
            h, w = (image_size, image_size) if np.isscalar(image_size) else image_size
            if bgr.shape[:2] != (h, w):
                bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        if images is None:
            images = np.empty((len(encoded),) + bgr.shape, np.uint8)
        if bgr.shape != images.shape[1:]:
            raise ValueError(f"{path}: image {i} is {bgr.shape[:2]}, image 0 is "
                             f"{images.shape[1:3]}; pass image_size to resize")
        images[i] = bgr[:, :, ::-1]
    if images is None:
        images = np.zeros((0, 0, 0, 3), np.uint8)
    return images, issame


def write_verification_bin(path, images, issame, quality=95):
    """Write a ``.bin`` file in insightface's layout.

    Parameters
    ----------
    images : sequence of (H, W, 3) uint8 RGB arrays or of encoded bytes, length 2P
    issame : sequence of bool, length P
    """
    issame = [bool(x) for x in issame]
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs")
    bins = []
    for img in images:
        if isinstance(img, (bytes, bytearray)):
            bins.append(bytes(img))
            continue
        img = np.asarray(img, np.uint8)
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("could not encode an image")
        bins.append(buf.tobytes())
    with open(path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=pickle.HIGHEST_PROTOCOL)
