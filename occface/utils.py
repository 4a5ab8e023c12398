"""Small shared helpers: run metadata for result files, atomic writes, a console progress bar,
settings checks."""

import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

from occface.paths import REPO_ROOT


def git_commit():
    """The repository's HEAD commit (with ``-dirty`` when the tree has changes), or ``None``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        return head + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_metadata(settings=None):
    """The common part of every result file: settings, commit, versions, machine, time.

    Parameters
    ----------
    settings : dict, optional
        The exact settings of the run (flags, seed, data paths); stored under ``"settings"``.
    """
    import numpy as np
    meta = {
        "settings": dict(settings or {}),
        "git_commit": git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu_count": os.cpu_count()},
    }
    try:
        import tensorflow as tf
        import keras
        meta["tensorflow"] = tf.__version__
        meta["keras"] = keras.__version__
    except ImportError:  # pragma: no cover - TF is a hard requirement in practice
        pass
    return meta


def ensure(ok, message):
    """Raise ``ValueError(message)`` unless ``ok`` (the settings checks of the run configs)."""
    if not ok:
        raise ValueError(message)


def ensure_each(settings, keys, ok, message):
    """:func:`ensure` that ``ok(value)`` holds for the attribute ``key`` of ``settings``, per key.

    Parameters
    ----------
    settings : object
        A config (e.g. a dataclass instance).
    keys : iterable of str
        The attributes to check, in order (the first failing one is named).
    ok : callable
        ``ok(value) -> bool``.
    message : str
        Format string with ``{key}`` and ``{value}`` (e.g. ``"{key} must be >= 0, got {value}"``).

    Examples
    --------
    >>> class Settings:
    ...     steps, warmup = 10, -1
    >>> ensure_each(Settings, ("steps", "warmup"), lambda v: v >= 0,
    ...             "{key} must be >= 0, got {value}")
    Traceback (most recent call last):
    ...
    ValueError: warmup must be >= 0, got -1
    """
    for key in keys:
        value = getattr(settings, key)
        ensure(ok(value), message.format(key=key, value=value))


def write_atomic(path, data, mode="w"):
    """Write ``data`` to ``path`` so that a reader sees either the old file or the whole new one.

    The data goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed
    over ``path`` (``os.replace`` is atomic on POSIX).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file should read like any other
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj):
    """Atomically write ``obj`` as indented strict JSON (see :func:`json_text`)."""
    write_atomic(path, json_text(obj) + "\n")


def json_text(obj, indent=2):
    """``obj`` as strict JSON text (RFC 8259): what every tool writes or prints.

    numpy scalars and arrays become numbers and lists, paths strings, tuples lists. A non-finite
    number (``inf``, ``-inf``, ``nan``: e.g. the PSNR of a face identical to its ground truth)
    has no JSON spelling -- Python's ``json`` would write a bare ``Infinity`` / ``NaN`` that
    strict parsers reject -- and is written as ``null``.

    Parameters
    ----------
    obj : object
        dicts, lists, tuples, numbers, strings, bools, None, numpy values, paths.
    indent : int, optional

    Returns
    -------
    str

    Raises
    ------
    TypeError
        For a value of another type.

    Examples
    --------
    >>> import numpy as np
    >>> json_text({"psnr": float("inf"), "ssim": np.float32(0.5), "n": np.arange(2)}, indent=None)
    '{"psnr": null, "ssim": 0.5, "n": [0, 1]}'
    """
    return json.dumps(_strict(obj), indent=indent, sort_keys=False, allow_nan=False)


def _strict(value):
    import math

    import numpy as np
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class ProgressBar:
    """A one-line console progress bar with rate and ETA, for tools (library code never prints).

    Parameters
    ----------
    total : int or None
        Number of items expected; ``None`` shows only the count and rate.
    desc : str
        Label shown before the bar.
    stream : file-like
        Where to draw; defaults to ``sys.stderr``. Redraws at most every ``min_interval`` seconds.
    """

    def __init__(self, total=None, desc="", stream=None, min_interval=0.2, unit="it"):
        self.total = total
        self.desc = desc
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self.unit = unit
        self.count = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last_draw = 0.0

    def update(self, n=1, postfix=None):
        self.count += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval or (self.total and self.count >= self.total):
            self._draw(now)

    def _draw(self, now):
        self._last_draw = now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        if self.total:
            frac = min(self.count / self.total, 1.0)
            filled = int(frac * 24)
            eta = (self.total - self.count) / rate if rate > 0 else float("inf")
            text = (f"\r{self.desc} [{'#' * filled}{'.' * (24 - filled)}] {self.count}/{self.total} "
                    f"{rate:.1f} {self.unit}/s ETA {_fmt_seconds(eta)}")
        else:
            text = f"\r{self.desc} {self.count} {rate:.1f} {self.unit}/s {_fmt_seconds(elapsed)}"
        if self.postfix:
            text += f" {self.postfix}"
        self.stream.write(text)
        self.stream.flush()

    def close(self):
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _fmt_seconds(seconds):
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
