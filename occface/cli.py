"""Shared behaviour of the absl-flag tools in ``tools/``: one-line errors, never a traceback.

Every tool ends in :func:`run`, the one route from the command line to its ``main``:

1. flags are parsed by :func:`parse_flags` -- a misspelled or invalid flag (unknown name, bad
   value, missing required flag: ``--NAME is required``, unreadable ``--flagfile``) is one
   stderr line
   ``<prog>: error: <problem>`` and exit status 2; ``--help`` / ``--helpshort`` / ``-h`` /
   ``--helpfull`` print the help on stdout and exit 0;
2. stray positional arguments are refused the same way (unless the tool takes them);
3. the tool's cheap ``checks`` run (missing input files, inconsistent flags: no TensorFlow
   needed, so such mistakes are reported in well under a second);
4. only then is TensorFlow imported (:func:`import_tensorflow_quietly`) and ``main`` called.

Tools therefore import nothing heavy at module level: their flags are defined from plain
constants (the choices from :mod:`occface.choices`) or, for a training tool, from its config
dataclass (:func:`define_config_flags`, one flag per field; read back by
:func:`config_from_flags`), and TensorFlow-backed modules are imported inside ``main``.

What the training tools share beyond this (input checks, console, run wrap-up) is in
:mod:`occface.cli_training`.
"""

import dataclasses
import re
import sys

from absl import flags

# The flags that define_config_flags defines belong to the tool that calls it (its --help).
flags.disclaim_key_flags()

#: Exit status of a usage mistake (a bad flag, argument or missing input), as argparse's.
USAGE_ERROR = 2
#: Command-line spellings of absl's help flags, plus ``-h`` (an alias of ``--help`` here).
HELP_ARGS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort", "--helpfull",
             "-helpfull", "--helpxml", "-helpxml")


def fail(prog, message, code=1):
    """Print ``<prog>: error: <message>`` on stderr and exit with ``code``.

    Parameters
    ----------
    prog : str
        The tool's name (``tools/<prog>.py``).
    message : str
        What went wrong, on one line.
    code : int, optional
        Exit status (default 1; :data:`USAGE_ERROR` for flag mistakes).
    """
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def parse_flags(prog, flag_values, argv):
    """absl parsing with a one-line error and exit code 2 (no usage dump, no traceback).

    absl's help flags print the help on stdout and exit with status 1; here they exit 0, and
    ``-h`` means ``--help``.

    Parameters
    ----------
    prog : str
        The tool's name, prefixed to the error line.
    flag_values : absl.flags.FlagValues
        The flags to parse into (normally ``absl.flags.FLAGS``).
    argv : list of str
        The command line, program name first.

    Returns
    -------
    list of str
        The program name and the positional arguments.
    """
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    argv[1:end] = ["--help" if a == "-h" else a for a in argv[1:end]]
    try:
        return flag_values(argv)
    except SystemExit as done:  # absl's --help & co.: help printed on stdout, then exit(1)
        sys.exit(0 if done.code == 1 else done.code)
    except flags.Error as err:
        text = str(err).splitlines()[0].replace("ERROR:: ", "") if str(err) else "bad flags"
        required = re.fullmatch(r"flag --(\w+)=None: Flag --\1 must have a value other than "
                                r"None\.", text)
        fail(prog, f"--{required.group(1)} is required" if required else text, code=USAGE_ERROR)
    except OSError as err:  # e.g. a --flagfile that does not exist
        fail(prog, f"cannot read flags: {err}", code=USAGE_ERROR)


def run(main, prog, checks=None, positional=False):
    """The command-line route of every tool: flags, cheap checks, TensorFlow, ``main``.

    Parameters
    ----------
    main : callable
        ``main(argv) -> int or None``; its return value is the exit status.
    prog : str
        The tool's name for error lines.
    checks : callable, optional
        ``checks(argv)``, run before TensorFlow is imported: it reports flag mistakes absl does
        not see (missing input files, inconsistent flags) with :func:`fail`.
    positional : bool, optional
        Whether the tool takes positional arguments; if not (default), any is refused as
        ``unexpected arguments: ...`` with exit status 2.
    """
    from absl import app

    def route(argv):
        if not positional and len(argv) > 1:
            fail(prog, f"unexpected arguments: {' '.join(argv[1:])}", code=USAGE_ERROR)
        if checks is not None:
            checks(argv)
        import_tensorflow_quietly()
        return main(argv)

    app.run(route, flags_parser=lambda argv: parse_flags(prog, flags.FLAGS, argv))


def define_config_flags(config_class, help_texts=None, flag_values=flags.FLAGS):
    """Define one absl flag per field of the dataclass ``config_class``, same name and default.

    The flag's kind follows the field's default: bool, integer, float, list (a tuple default) or
    string (an empty string default becomes ``None``, i.e. "not given"). The field's metadata
    may refine it:

    ``help``
        The help text (else ``help_texts[name]``, else the name).
    ``choices``
        The allowed values: an enum flag (integer choices are offered as their strings).
    ``lower_bound``
        The smallest value of an integer flag.
    ``flag="string"``
        A string flag for a tuple field (e.g. integer ranges such as ``0-6``, parsed by the
        config).

    Parameters
    ----------
    config_class : dataclass type
        Constructible without arguments (its defaults are the flags' defaults).
    help_texts : dict, optional
        Help text by field name, for fields without ``help`` metadata.
    flag_values : absl.flags.FlagValues, optional
    """
    defaults = config_class()
    for field in dataclasses.fields(config_class):
        name, value, meta = field.name, getattr(defaults, field.name), field.metadata
        text = meta.get("help") or (help_texts or {}).get(name, name)
        options = dict(flag_values=flag_values)
        if meta.get("choices") is not None:
            flags.DEFINE_enum(name, str(value), [str(c) for c in meta["choices"]], text,
                              **options)
        elif isinstance(value, bool):
            flags.DEFINE_bool(name, value, text, **options)
        elif isinstance(value, int):
            flags.DEFINE_integer(name, value, text, lower_bound=meta.get("lower_bound"),
                                 **options)
        elif isinstance(value, float):
            flags.DEFINE_float(name, value, text, **options)
        elif isinstance(value, tuple) and meta.get("flag") != "string":
            flags.DEFINE_list(name, [str(v) for v in value], text, **options)
        else:
            text_default = ",".join(map(str, value)) if isinstance(value, tuple) else value
            flags.DEFINE_string(name, text_default or None, text, **options)


def config_from_flags(config_class, flag_values=flags.FLAGS):
    """The flags of :func:`define_config_flags` as a dict for ``config_class.from_dict``.

    Enum flags with integer choices come back as integers, string flags not given as ``""``;
    lists stay lists of strings (the config parses them).
    """
    cfg = {}
    for field in dataclasses.fields(config_class):
        value = flag_values[field.name].value
        choices = field.metadata.get("choices")
        if choices is not None and isinstance(choices[0], int) and value is not None:
            value = int(value)
        elif value is None:
            value = ""
        cfg[field.name] = value
    return cfg


def calibration_folds(values):
    """``--calibration_folds`` (LFW folds 1-10, as ``tools/export.py`` takes them) -> 0-based list.

    ``None`` stays ``None`` (all folds). Raises ``ValueError`` naming the flag otherwise.
    """
    if values is None:
        return None
    try:
        folds = [int(v) - 1 for v in values]
    except ValueError:
        raise ValueError(f"--calibration_folds must be numbers 1-10, got {values}") from None
    if not folds or any(not 0 <= f < 10 for f in folds):
        raise ValueError(f"--calibration_folds must be numbers 1-10, got {values}")
    return folds


def checked_calibration_folds(prog, values):
    """:func:`calibration_folds`, a bad value reported as ``<prog>: error: ...`` (exit status 2)."""
    try:
        return calibration_folds(values)
    except ValueError as err:
        fail(prog, str(err), code=USAGE_ERROR)


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

