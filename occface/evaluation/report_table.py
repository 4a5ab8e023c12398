"""An evaluation report (:func:`occface.evaluation.runner.run_evaluation`) as the papers' tables.

:func:`format_table` gives the plain-text table; :func:`condition_name` names a condition row
(also the label of the plots in :mod:`~occface.evaluation.plots`).
"""

import math

__all__ = ["condition_name", "format_table"]


def condition_name(res):
    """Short name of one condition of a report: ``"clean"``, ``"mask (both)"``, ...

    Parameters
    ----------
    res : dict
        One entry of ``report["conditions"]``.

    Returns
    -------
    str
    """
    if res.get("protocol") == "rmfrd":
        return "masked vs unmasked"
    name = "clean" if res["occlusion"] == "none" else f"{res['occlusion']} ({res['occlude']})"
    if res.get("subset", "all") != "all":
        name += f" [{res['subset']}]"
    return name


def _fmt_far(key):
    f = float(key)
    exp = math.log10(f) if f > 0 else None
    return f"1e{int(round(exp))}" if exp is not None and abs(exp - round(exp)) < 1e-9 else key


def format_table(report):
    """The report as a plain-text table (accuracy ± std, TAR@FAR columns, AUC, robustness)."""
    conds = report["conditions"]
    lines = [f"protocol {report['protocol']}  model {report['model'].get('source')}  "
             f"flip {report['flip']}  seed {report['seed']}"]
    if report["protocol"] == "megaface":
        lines.append(f"{'condition':<24s} {'rank-1 (%)':>10s} {'pairs':>8s} {'distractors':>12s}")
        for r in conds:
            lines.append(f"{condition_name(r):<24s} {100 * r['rank1']:10.2f} {r['n_pairs']:8d} "
                         f"{r['n_distractors']:12d}")
        return "\n".join(lines)
    if report["protocol"] == "rmfrd":
        return "\n".join(lines + _rmfrd_rows(conds))
    fars = list(conds[0]["tar_at_far"])
    head = f"{'condition':<34s}"
    if report["protocol"] != "ijbc":
        head += f" {'accuracy (%)':>16s}"
    head += "".join(f" {'TAR@' + _fmt_far(f):>10s}" for f in fars) + f" {'AUC':>7s}"
    if report["protocol"] != "ijbc":
        head += f" {'R (Eq.8)':>9s}"
    lines.append(head)
    for r in conds:
        row = f"{condition_name(r):<34s}"
        if report["protocol"] != "ijbc":
            row += f" {100 * r['accuracy']:8.2f} ± {100 * r['std']:5.2f}"
        row += "".join(f" {100 * r['tar_at_far'][f]:10.2f}" for f in fars)
        row += f" {r['auc']:7.4f}"
        if report["protocol"] != "ijbc":
            rob = r.get("feature_robustness")
            row += f" {rob:9.4f}" if rob is not None else f" {'-':>9s}"
        lines.append(row)
    pts = [p for r in conds for p in r.get("operating_points", []) if p["below_resolution"]]
    if pts:
        lines.append(f"(TAR at FAR < 1/N_impostor = {1 / pts[0]['n_neg']:.2g} is the TAR at FAR 0)")
    return "\n".join(lines)


def _rmfrd_rows(conds):
    fars = list(conds[0]["tar_at_far"])
    head = (f"{'condition':<24s} {'balanced acc (%)':>16s}"
            + "".join(f" {'TAR@' + _fmt_far(f):>10s}" for f in fars)
            + f" {'rank-1 (%)':>10s} {'fallbacks':>9s}")
    rows = [head]
    for r in conds:
        rows.append(f"{condition_name(r):<24s} "
                    f"{100 * r['accuracy']:8.2f} ± {100 * r['std']:5.2f}"
                    + "".join(f" {100 * r['tar_at_far'][f]:10.2f}" for f in fars)
                    + f" {100 * r['rank1']:10.2f} {r['n_fallback']:9d}")
        rows.append(f"({r['n_probes']} masked probes x {r['n_gallery']} unmasked: "
                    f"{r['n_genuine']:,} genuine / {r['n_impostor']:,} impostor pairs, FAR "
                    f"resolution 1/{r['n_impostor']:,}; balanced set {r['n_balanced_pairs']:,} "
                    f"pairs in {r['n_folds']} folds by probe;")
        rows.append(f" no face found in {r['n_fallback_probes']} masked + "
                    f"{r['n_fallback_gallery']} unmasked crops, fallback {r['fallback']})")
    return rows
