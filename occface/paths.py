"""Where occface finds the real face data and its own shipped assets."""

import os
import pathlib

ASSETS_DIR = pathlib.Path(__file__).resolve().parent / "assets"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def data_root(required=True):
    """Directory holding the shared face data (``lfw/``, ``att_faces/``, ...).

    Looked up in this order: the ``OCCFACE_DATA`` environment variable, then
    ``../shared/data`` beside the repository root.

    Parameters
    ----------
    required : bool
        If true, raise ``FileNotFoundError`` naming both places when neither exists;
        otherwise return ``None``.
    """
    env = os.environ.get("OCCFACE_DATA")
    candidates = [pathlib.Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if required:
        raise FileNotFoundError(
            "occface data directory not found: set OCCFACE_DATA or place the data at "
            + " or ".join(str(c) for c in candidates))
    return None
