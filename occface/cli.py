"""Shared behaviour of the absl-flag tools in ``tools/``: one-line errors, never a traceback."""

import sys

from absl import flags


def fail(prog, message, code=1):
    """Print ``<prog>: error: <message>`` on stderr and exit with ``code``."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def parse_flags(prog, flag_values, argv):
    """absl parsing with a one-line error and exit code 2 (no usage dump, no traceback)."""
    try:
        return flag_values(argv)
    except flags.Error as err:
        text = str(err).splitlines()[0] if str(err) else "bad flags"
        fail(prog, text.replace("ERROR:: ", ""), code=2)
    except OSError as err:  # e.g. a --flagfile that does not exist
        fail(prog, f"cannot read flags: {err}", code=2)


def parse_int_ranges(value):
    """``"0-6"`` / ``"0,1,2"`` / ``"0-2 5"`` / ``["0-6", "8"]`` -> list of ints (ranges inclusive).

    Raises ``ValueError`` for a part that is not an integer or ``lo-hi`` range.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        for part in str(item).replace(",", " ").split():
            if "-" in part:
                lo, hi = part.split("-", 1)
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    return out


def import_tensorflow_quietly():
    """Import TensorFlow with its import-time C++ log lines hidden, when the user asked for quiet.

    TF >= 2.19 writes absl log lines at import (e.g. the oneDNN notice) whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says (tensorflow/tensorflow#100442), in front of a tool's one-line
    error. With ``TF_CPP_MIN_LOG_LEVEL`` >= 1 the process's stderr is pointed at ``/dev/null``
    for the duration of the import only; an import error still raises (and prints) afterwards.
    """
    import os
    import sys
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
