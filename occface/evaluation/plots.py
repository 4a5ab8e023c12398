"""Plots of an evaluation report: the ROC curves and the accuracy of every condition.

The report is :func:`occface.evaluation.runner.run_evaluation`'s; matplotlib is an optional
extra (``pip install occface[plot]``), imported only when a plot is drawn.
"""

import pathlib

import numpy as np

from occface.evaluation.report_table import condition_name

__all__ = ["plot_roc", "accuracy_plot_path", "plot_condition_accuracy"]


def plot_roc(report, path):
    """Plot every condition's ROC curve to ``path``.

    Raises
    ------
    ImportError
        matplotlib is not installed (it is an optional extra: ``pip install occface[plot]``).
    ValueError
        The report has no ROC curves (MegaFace).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = [(r, r["roc"]) for r in report["conditions"] if "roc" in r]
    if not curves:
        raise ValueError(f"protocol {report['protocol']} has no ROC curve to plot")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r, c in curves:
        fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
        ok = fpr > 0
        ax.plot(fpr[ok], tpr[ok], label=f"{condition_name(r)} (AUC {r['auc']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{report['protocol']}: {report['model'].get('source')}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def accuracy_plot_path(roc_path):
    """Where :func:`plot_condition_accuracy` goes beside a ROC plot: ``roc.png`` →
    ``roc_accuracy.png``."""
    path = pathlib.Path(roc_path)
    return path.with_name(f"{path.stem}_accuracy{path.suffix or '.png'}")


def plot_condition_accuracy(report, path):
    """Bar chart of every condition's accuracy (clean, mask, sunglasses, block …) to ``path``.

    One bar per condition of ``report["conditions"]`` in the report's order: verification
    accuracy (with its ± std over folds as an error bar) where the protocol has one, else
    MegaFace rank-1; the value is written above each bar.

    Returns
    -------
    dict
        ``path``; ``size`` ``(width, height)`` in pixels; ``metric`` (``"accuracy"`` or
        ``"rank1"``); ``bars``: list of ``{"label", "value", "box"}`` with the bar's pixel box
        ``(x0, y0, x1, y1)`` (y down, as in the PNG).

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        No condition has an accuracy or rank-1 (e.g. IJB-C, which reports TAR@FAR).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    conds = report["conditions"]
    metric = next((m for m in ("accuracy", "rank1") if any(m in r for r in conds)), None)
    if metric is None:
        raise ValueError(f"protocol {report['protocol']} reports no accuracy to plot")
    rows = [r for r in conds if metric in r]
    labels = [condition_name(r) for r in rows]
    values = np.array([100 * r[metric] for r in rows])
    errors = np.array([100 * r.get("std", 0.0) for r in rows])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 4.5), dpi=120)
    colours = ["#4c72b0" if r.get("occlusion", "none") == "none" else "#dd8452" for r in rows]
    bars = ax.bar(np.arange(len(rows)), values, yerr=errors if errors.any() else None,
                  color=colours, capsize=4, width=0.65)
    for x, v in enumerate(values):
        ax.text(x, v + max(errors.max(), 0) + 1, f"{v:.1f}", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(np.arange(len(rows)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)" if metric == "accuracy" else "rank-1 (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(f"{report['protocol']}: {report['model'].get('source')}", fontsize=9)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    boxes = []
    for label, value, bar in zip(labels, values, bars):
        bb = bar.get_window_extent()
        boxes.append({"label": label, "value": float(value),
                      "box": (int(round(bb.x0)), int(round(height - bb.y1)),
                              int(round(bb.x1)), int(round(height - bb.y0)))})
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"path": str(path), "size": (width, height), "metric": metric, "bars": boxes}
