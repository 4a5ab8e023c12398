"""The options of an evaluation run: protocols, default data, occlusion lists, early checks.

The checks are cheap (no data, no model): ``tools/evaluate.py`` runs them before it loads the
model, :func:`occface.evaluation.runner.run_evaluation` again before it starts.
"""

from occface.evaluation.occlusion import OCCLUSION_KINDS

__all__ = ["PROTOCOLS", "DEFAULT_DATA_DIRS", "parse_occlusions", "default_data_dir",
           "check_protocol_options"]

PROTOCOLS = ("lfw", "bin", "ijbc", "megaface", "pairs", "rmfrd")
#: Protocols whose data directory defaults to the shared data (``<data_root>/<name>``).
DEFAULT_DATA_DIRS = {"lfw": "lfw", "rmfrd": "rmfrd_subset"}


def parse_occlusions(text):
    """``"none,mask"`` -> ``["none", "mask"]`` (``"all"`` = every kind), validated."""
    if isinstance(text, (list, tuple)):
        kinds = list(text)
    else:
        kinds = [k.strip() for k in str(text).split(",") if k.strip()]
    if kinds == ["all"]:
        kinds = list(OCCLUSION_KINDS)
    if not kinds:
        raise ValueError("no occlusion kind given")
    for k in kinds:
        if k not in OCCLUSION_KINDS:
            raise ValueError(f"unknown occlusion {k!r}; choose from {', '.join(OCCLUSION_KINDS)} "
                             "(comma-separated) or 'all'")
    return list(dict.fromkeys(kinds))


def default_data_dir(protocol):
    """The shared-data directory of ``protocol`` (``<data_root>/<DEFAULT_DATA_DIRS[protocol]>``).

    Raises
    ------
    ValueError
        ``protocol`` has no default data (``--data_dir`` is required).
    """
    if protocol not in DEFAULT_DATA_DIRS:
        raise ValueError(f"--data_dir is required for protocol {protocol!r}")
    from occface.paths import data_root
    return data_root() / DEFAULT_DATA_DIRS[protocol]


def check_protocol_options(protocol, occlusions=("none",), max_pairs=None):
    """Reject option combinations a protocol cannot honour (cheap: no data, no model).

    ``rmfrd`` measures real masks on every pair: synthetic ``occlusions`` other than ``"none"``
    and ``max_pairs`` are errors (``occlude`` is ignored, as for any clean condition).

    Raises
    ------
    ValueError
        Naming the protocol and the option.
    """
    if protocol != "rmfrd":
        return
    occlusions = parse_occlusions(occlusions)
    if occlusions != ["none"]:
        raise ValueError(f"protocol 'rmfrd' has real masks, synthetic occlusion does not apply: "
                         f"--occlusion must be 'none', got {','.join(occlusions)!r}")
    if max_pairs is not None:
        raise ValueError("protocol 'rmfrd' always evaluates every pair: --max_pairs is not "
                         "supported")
