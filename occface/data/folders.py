"""Face images on disk: which file suffixes are images, and identity-per-folder trees.

An identity-per-folder tree is ``<root>/<identity>/<image>``: every non-hidden sub-directory of
``<root>`` is one identity, named after it, and every non-hidden file below it (recursively) is one
of its images. Both the training pipeline (:func:`occface.data.training_dataset`) and the dataset
preparation (:func:`occface.data.list_identity_tree`) read such trees with
:func:`identity_folders`.
"""

import os

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
"""Lower-case suffixes of the files read as images when a folder is scanned for faces (OpenCV
decodes them all)."""


def identity_folders(root):
    """The identities of an identity-per-folder tree and their files.

    Hidden entries (names starting with ``.``) are skipped at every level; files directly in
    ``root`` are ignored (e.g. a README). Every file counts, whatever its suffix (files that do
    not decode are the readers' concern).

    Parameters
    ----------
    root : str or path

    Returns
    -------
    list of (str, list of str)
        ``(identity name, its files)`` in sorted identity order; files are
        ``os.path.join(<root>/<identity>/<subdirs>, name)`` paths, sorted by directory (walked
        top-down in sorted order) then name. Identities without files are left out.
    """
    identities = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        files = []
        for dirpath, dirnames, filenames in os.walk(entry.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(os.path.join(dirpath, name) for name in sorted(filenames)
                         if not name.startswith("."))
        if files:
            identities.append((entry.name, files))
    return identities
