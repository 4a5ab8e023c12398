"""The command line shared by the side-by-side model tables (``peer_table.py``, ``heldout_eval.py``).

``--models "name=path,name=path"`` (a name may not hold ``,`` or ``=``; ``dlib`` names dlib's
recognizer), ``--aligned_dir``,
``--lfw_root`` and ``--output``; every model is scored by the table's ``evaluate(path, args)``,
then the rows go to ``--output`` (JSON with the settings and git commit) and a ``.md`` beside it.
A bad entry, a missing LFW or aligned tree is one line naming it and exit status 1.
"""

import argparse
import os
import pathlib
import sys

from occface.choices import is_dlib_spec
from occface.paths import data_root
from occface.utils import run_metadata, write_json


def run(prog, description, evaluate, markdown, default_output=None, extra_args=()):
    """Parse the flags, score every model, write JSON + markdown; returns the rows.

    Parameters
    ----------
    prog : str
        Name in error lines.
    description : str
    evaluate : callable
        ``evaluate(path, args) -> dict`` (must hold ``seconds``).
    markdown : callable
        ``markdown(rows) -> str``.
    default_output : str, optional
        ``--output`` default; required when None.
    extra_args : sequence of (flag, kwargs)
        More ``argparse`` arguments.
    """
    root = data_root(required=False)
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--models", required=True, help="name=path,name=path,...")
    p.add_argument("--aligned_dir", default="runs/lfw112")
    p.add_argument("--lfw_root", default=str(root / "lfw") if root else None)
    p.add_argument("--output", default=default_output, required=default_output is None,
                   help="JSON to write (and a .md beside it).")
    for flag, kwargs in extra_args:
        p.add_argument(flag, **kwargs)
    args = p.parse_args()
    items = [m.split("=", 1) for m in args.models.split(",")]
    bad = [m for m in items if len(m) != 2 or not (os.path.exists(m[1]) or is_dlib_spec(m[1]))]
    if bad:
        sys.exit(f"{prog}: --models entry {'='.join(bad[0])!r} is not name=<existing path>")
    if not args.lfw_root or not pathlib.Path(args.lfw_root, "pairs.txt").is_file():
        sys.exit(f"{prog}: LFW pairs.txt not found under --lfw_root={args.lfw_root} "
                 "(set OCCFACE_DATA)")
    if not pathlib.Path(args.aligned_dir).is_dir():
        sys.exit(f"{prog}: aligned LFW not found: --aligned_dir={args.aligned_dir} "
                 "(run tools/prepare_dataset.py first, see the README)")
    rows = {}
    for name, path in items:
        rows[name] = evaluate(path, args)
        print(f"{name}: done in {rows[name]['seconds']:.0f} s", flush=True)
    md = markdown(rows)
    write_json(args.output, {"rows": rows, **run_metadata(vars(args))})
    pathlib.Path(args.output).with_suffix(".md").write_text(md)
    print(md)
    return rows
