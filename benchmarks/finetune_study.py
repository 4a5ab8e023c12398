"""The occlusion fine-tuning study: pretrained ArcFace MobileFaceNet, five arms, several seeds.

    python benchmarks/finetune_study.py --aligned_dir runs/lfw112 --cache_dir runs/ft_cache \
        --arms pretrained,lcd_occlusion,occlusion,lcd,clean --seeds 0,1,2

Arms (:data:`occface.train.finetune.ARMS`), one recipe for all: no fine-tuning; fine-tuned on
clean faces; + synthetic occlusion; + LCD; + LCD + synthetic occlusion. Each run writes
``benchmarks/results/finetune/<arm>_s<seed>.json`` when it ends (settings, seed, git commit,
validation curve, LFW / RMFRD metrics, the training step's images/s) and is skipped when that
file exists, so the study can stop and resume. The fine-tuned models go to
``<cache_dir>/models/<arm>_s<seed>.keras``. At the end ``summary.json`` / ``summary.md`` hold
mean ± 95 % CI over seeds per arm and paired differences between arms (significant when the
95 % CI of the per-seed difference excludes 0, i.e. a two-sided paired t-test at 5 %).

The weights derive from insightface's ``w600k_mbf`` (non-commercial research use only).
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from occface.evaluation.stats import mean_ci, paired_verdict  # noqa: E402
from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "finetune"
METRICS = {  # name -> path in a run's JSON
    "lfw10_clean": ("lfw10", "accuracy"),
    "test_clean": ("test", "none", "accuracy_at_val_threshold"),
    "test_mask": ("test", "mask", "accuracy_at_val_threshold"),
    "test_sunglasses": ("test", "sunglasses", "accuracy_at_val_threshold"),
    "test_block": ("test", "block", "accuracy_at_val_threshold"),
    "test_mask_tar": ("test", "mask", "tar_at_far_1e-2"),
    "rmfrd_accuracy": ("rmfrd", "accuracy"),
    "rmfrd_tar_1e-2": ("rmfrd", "tar_at_far", "0.01"),
    "rmfrd_rank1": ("rmfrd", "rank1"),
    "test_impostor_cosine": ("test", "none", "mean_impostor_cosine"),
}


def _get(run, path):
    v = run
    for k in path:
        v = v[k]
    return float(v)


def summarize(runs):
    """Per arm mean ± CI of :data:`METRICS`, and paired per-seed differences between arms."""
    by_arm = {}
    for r in runs:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    table = {}
    for arm, seeds in by_arm.items():
        table[arm] = {"seeds": sorted(seeds)}
        for name, path in METRICS.items():
            vals = [_get(seeds[s], path) for s in sorted(seeds)]
            m, h = mean_ci(vals)
            table[arm][name] = {"mean": m, "ci95": h, "values": vals}
    comparisons = []
    base = "pretrained"
    for a in by_arm:
        for b in by_arm:
            if a == b or not (b == base or (a, b) in (("lcd_occlusion", "occlusion"),
                                                      ("lcd", "clean"))):
                continue
            seeds = sorted(set(by_arm[a]) & set(by_arm[b])) if b != base else sorted(by_arm[a])
            if not seeds:
                continue
            row = {"a": a, "b": b, "seeds": seeds}
            for name, path in METRICS.items():
                ref = by_arm[b]
                diffs = [_get(by_arm[a][s], path) - _get(ref[s] if s in ref else ref[min(ref)],
                                                        path) for s in seeds]
                v = paired_verdict(diffs, np.zeros(len(diffs)))
                row[name] = {k: v[k] for k in ("mean_diff", "ci95", "verdict")}
            comparisons.append(row)
    return table, comparisons


def markdown(table, comparisons):
    cols = ["lfw10_clean", "test_clean", "test_mask", "test_sunglasses", "test_block",
            "rmfrd_accuracy", "rmfrd_tar_1e-2", "rmfrd_rank1", "test_impostor_cosine"]
    lines = ["| arm | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for arm, row in table.items():
        cells = []
        for c in cols:
            m, h = row[c]["mean"], row[c]["ci95"]
            scale = 1 if c.endswith("cosine") else 100
            cells.append(f"{m * scale:.2f} ± {h * scale:.2f}")
        lines.append(f"| {arm} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "| a − b | " + " | ".join(cols[:-1]) + " |", "|---|" + "---|" * (len(cols) - 1)]
    for c in comparisons:
        cells = [f"{c[k]['mean_diff'] * 100:+.2f} ± {c[k]['ci95'] * 100:.2f} ({c[k]['verdict']})"
                 for k in cols[:-1]]
        lines.append(f"| {c['a']} − {c['b']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    root = data_root(required=False)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", default=str(root / "models/arcface_mbf_w600k/w600k_mbf.onnx")
                   if root else None)
    p.add_argument("--aligned_dir", default="runs/lfw112")
    p.add_argument("--lfw_root", default=str(root / "lfw") if root else None)
    p.add_argument("--rmfrd_dir", default=str(root / "rmfrd_subset") if root else None)
    p.add_argument("--cache_dir", default="runs/ft_cache")
    p.add_argument("--arms", default="pretrained,lcd_occlusion,occlusion,lcd,clean")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--lcd_max_rate", type=float, default=0.6)
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--max_train_images", type=int, default=6000)
    p.add_argument("--output_dir", default=str(RESULTS))
    p.add_argument("--summary_only", action="store_true")
    args = p.parse_args()
    out_dir = pathlib.Path(args.output_dir)
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]

    if not args.summary_only:
        from occface.train.finetune import ARMS, FinetuneConfig
        from occface.train.finetune_protocol import run_arm, teacher_and_data
        from occface.utils import ProgressBar
        for arm in arms:
            if arm not in ARMS:
                sys.exit(f"finetune_study: error: unknown arm {arm!r}; choose from "
                         f"{', '.join(ARMS)}")
        todo = [(a, s) for a in arms for s in (seeds[:1] if a == "pretrained" else seeds)
                if not (out_dir / f"{a}_s{s}.json").is_file()]
        if todo:
            t0 = time.time()
            head, data, targets = teacher_and_data(
                args.onnx, args.aligned_dir, args.lfw_root, args.rmfrd_dir, args.cache_dir,
                max_train_images=args.max_train_images,
                progress_factory=lambda total, desc: ProgressBar(total, desc, unit="face"))
            print(f"caches ready in {time.time() - t0:.0f} s: {data.settings}", flush=True)
        for arm, seed in todo:
            cfg = FinetuneConfig(arm=arm, seed=seed, steps=args.steps,
                                 batch_size=args.batch_size, learning_rate=args.learning_rate,
                                 lcd_max_rate=args.lcd_max_rate, eval_every=args.eval_every)
            t0 = time.time()
            model, result = run_arm(args.onnx, data, head, targets, cfg,
                                    log_fn=lambda m: print(f"[{arm} s{seed}] {m}", flush=True))
            result["wall_seconds"] = time.time() - t0
            result["data"] = data.settings
            result["licence"] = ("derived from insightface w600k_mbf: non-commercial research "
                                 "use only")
            result.update(run_metadata(vars(args)))
            model_dir = pathlib.Path(args.cache_dir) / "models"
            model_dir.mkdir(parents=True, exist_ok=True)
            if arm != "pretrained":
                model.save(model_dir / f"{arm}_s{seed}.keras")
            write_json(out_dir / f"{arm}_s{seed}.json", result)
            t = result["test"]
            print(f"[{arm} s{seed}] done in {result['wall_seconds']:.0f} s: LFW10 "
                  f"{result['lfw10']['accuracy']:.4f}, test clean "
                  f"{t['none']['accuracy_at_val_threshold']:.4f} mask "
                  f"{t['mask']['accuracy_at_val_threshold']:.4f}, RMFRD "
                  f"{result['rmfrd']['accuracy']:.4f} / {result['rmfrd']['tar_at_far']['0.01']:.4f}"
                  f" / rank-1 {result['rmfrd']['rank1']:.4f}", flush=True)

    import json
    runs = [json.loads(f.read_text()) for f in sorted(out_dir.glob("*_s*.json"))]
    if runs:
        table, comparisons = summarize(runs)
        write_json(out_dir / "summary.json", {"table": table, "comparisons": comparisons,
                                              **run_metadata(vars(args))})
        md = markdown(table, comparisons)
        (out_dir / "summary.md").write_text(md)
        print(md)


if __name__ == "__main__":
    main()
