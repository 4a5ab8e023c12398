"""TF Serving's directory layout: versioned folders, their metadata, atomic publishing.

An export is ``export_dir/<version>/`` (what ``tensorflow_model_server --model_base_path``
points at) with ``assets.extra/occface.json`` holding the metadata (threshold and how it was
calibrated, model settings, policy evidence, git commit). A version is written to a hidden
temporary directory and renamed into place, so a killed export never leaves a half-written model
where a server would pick it up; an existing version is only replaced when ``overwrite=True``.
A published version is readable by every user (directories 0755, files 0644), so a server
running as another user can load it.

The read side (:data:`METADATA_FILE`, :func:`existing_versions`, :func:`latest_version_dir`,
:func:`read_metadata`) lives in :mod:`occface.models.io`, where loaders need it, and is
re-exported here.
"""

import os
import pathlib
import shutil
import tempfile

import numpy as np

from occface.models.io import METADATA_FILE, existing_versions, latest_version_dir, read_metadata

__all__ = ["ExportError", "METADATA_FILE", "DIR_MODE", "FILE_MODE", "existing_versions",
           "latest_version_dir", "read_metadata", "resolve_version", "publish_version",
           "make_world_readable"]

#: Permissions of a published version: readable (and directories enterable) by everyone.
DIR_MODE, FILE_MODE = 0o755, 0o644


class ExportError(RuntimeError):
    """Raised when an export cannot be written or fails its self-check."""


def _check_is_directory_or_absent(export_dir):
    """Raise :class:`ExportError` when ``export_dir`` or its nearest existing ancestor is not a
    directory (an ``mkdir`` there would fail with ``FileExistsError`` / ``NotADirectoryError``)."""
    for path in (export_dir, *export_dir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                what = "exists and is not a directory" if path == export_dir else \
                    f"cannot be created: {path} is not a directory"
                raise ExportError(f"export directory {export_dir} {what}")
            return


def resolve_version(export_dir, version=None, overwrite=False):
    """Pick the version number to write and check that writing it is allowed.

    Parameters
    ----------
    export_dir : str or Path
        The model's base path.
    version : int or None
        Explicit version; ``None`` means one more than the newest existing version (1 if none).
    overwrite : bool
        Allow replacing an existing version.

    Returns
    -------
    int

    Raises
    ------
    ExportError
        If ``export_dir`` is (under) a file, the version exists and ``overwrite`` is false, or
        ``version`` is not a positive int.
    """
    export_dir = pathlib.Path(export_dir)
    _check_is_directory_or_absent(export_dir)
    if version is None:
        versions = existing_versions(export_dir)
        return (versions[-1] + 1) if versions else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ExportError(f"export version must be a positive integer, got {version!r}")
    target = export_dir / str(int(version))
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; pass overwrite=True (--overwrite) to replace "
                          "it, or choose another version")
    return int(version)


def make_world_readable(root):
    """``chmod`` ``root`` and everything below it: directories :data:`DIR_MODE`, files
    :data:`FILE_MODE` (symbolic links are left alone)."""
    root = pathlib.Path(root)
    os.chmod(root, DIR_MODE)
    for parent, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, DIR_MODE)
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)


def publish_version(export_dir, version, write_fn, overwrite=False):
    """Run ``write_fn(tmp_dir)`` and move the finished directory to ``export_dir/<version>``.

    The temporary directory ``export_dir/.tmp-<version>-<pid>-*`` is made world-readable
    (:func:`make_world_readable`) before the rename, so the version appears complete and
    readable at once. Temporaries of dead exporting processes are removed first.

    Returns
    -------
    pathlib.Path
        ``export_dir/<version>``.

    Raises
    ------
    ExportError
        ``export_dir`` is not a directory, or the version appeared meanwhile and ``overwrite``
        is false. Whatever ``write_fn`` raises propagates, and nothing is published.
    """
    export_dir = pathlib.Path(export_dir)
    _check_is_directory_or_absent(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    target = export_dir / str(version)
    _remove_stale_temporaries(export_dir)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=export_dir))
    try:
        write_fn(tmp)
        make_world_readable(tmp)
        if target.exists():
            if not overwrite:  # appeared while we were writing
                raise ExportError(f"{target} appeared during the export; not overwritten")
            old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_temporaries(export_dir):
    """Delete ``.tmp-*`` / ``.old-*`` directories left by exports whose process has died."""
    for entry in pathlib.Path(export_dir).iterdir():
        parts = entry.name.split("-")
        if entry.is_dir() and parts[0] in (".tmp", ".old") and len(parts) >= 4 \
                and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
