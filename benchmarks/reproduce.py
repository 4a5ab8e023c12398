"""The LCD claims study (issue 14): one recipe, several seeds, held-out test folds, occluded faces.

    python benchmarks/reproduce.py --claims table2 --seeds 0,1,2
    python benchmarks/reproduce.py --summarize          # summary.json / summary.md only

Protocol (0-based ``pairs.txt`` folds; identities of different folds are disjoint): train on the
identities of folds 0–5 plus everyone in no pair (≥ 3 images each); fold 6 fixes the decision
threshold; folds 7–9 are the test, read once per run (:mod:`occface.evaluation.heldout`): clean,
and with the second face of every pair occluded by a MaskTheFace mask, sunglasses, the upper or
lower half, or a random block, each at occlusion seeds 0–2. The final model of every run is
scored (no checkpoint is chosen). Each run also reports the channel locality of its stage-3
features, Eq. 8 on stage-4 features under stage-3 channel dropout
(:mod:`occface.evaluation.locality`) and Eq. 8 in its image-occlusion form (``eq8_image``;
``--rescore_eq8_image`` adds it to JSONs written before it existed, from their models).

Claims and their arms (one recipe, ``--recipe``, for all):

* ``table2``: baseline, cd, cd_sr, lcd (LCD at the output of stage 3)
* ``position``: cd and lcd with LCD on stage 3's last residual branch (``lcd_position=branch``)
* ``table1``: cd at stage 2 and stage 4
* ``table3``: cutout, dropblock, wcd
* ``occlusion_training``: the baseline trained on synthetic masks / sunglasses / blocks
* ``recipe``: the baseline under every recipe, scored on the validation fold only (chooses the
  recipe; writes ``recipe_<name>_s<seed>.json``)

Each run writes ``benchmarks/results/study/<arm>_<recipe>_s<seed>.json`` when it ends (keys:
``arm``, ``variant``, ``seed``, ``lcd_position``, ``lcd_stage``, ``recipe``, ``git_commit``,
``test``, ``mean_impostor_cosine``, …) and is skipped when that file exists; models go to
``--runs_dir``. ``--summarize`` (also run after the runs) writes mean ± 95 % CI over seeds per arm
and the paired verdict of every claim.
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("claims", ["table2"], "Claims to run (see the module docstring).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
flags.DEFINE_list("arms", [], "Run only these arms of the claims, in this order (default: all).")
flags.DEFINE_string("recipe", "sgd_warm_cosine", "Training recipe for every arm.")
flags.DEFINE_list("probe_recipes", ["sgd_piecewise", "sgd_warm_cosine", "adamw_cosine"],
                  "Recipes the 'recipe' claim compares.")
flags.DEFINE_integer("steps", 1500, "Training steps per run (batch 64).", lower_bound=1)
flags.DEFINE_string("data_dir", "runs/lfw112", "Aligned LFW (tools/prepare_dataset.py output).")
flags.DEFINE_string("lfw_root", None, "LFW folder with pairs.txt (default: the shared data).")
flags.DEFINE_string("runs_dir", "runs/study", "Where the models are trained.")
flags.DEFINE_string("results_dir", None, "Result JSONs (default benchmarks/results/study).")
flags.DEFINE_list("occlusion_seeds", ["0", "1", "2"], "Occlusion seeds per test condition.")
flags.DEFINE_integer("max_runs", 0, "Stop after this many new runs (0 = all).", lower_bound=0)
flags.DEFINE_bool("summarize", False, "Only write the summary of the JSONs there are.")
flags.DEFINE_bool("rescore_eq8_image", False, "Add Eq. 8 in its image-occlusion form to result "
                  "JSONs written without it, from their models in --runs_dir, then summarize.")
flags.DEFINE_string("print_flagfile", None, "Print the tools/train_recognizer.py flagfile of "
                    "this arm (seed = the first of --seeds) and exit.")

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "study"


def recipe(name, steps):
    """The optimisation settings of a named recipe for ``steps`` training steps."""
    common = dict(arcface_margin=0.5, arcface_scale=64.0, momentum=0.9, warmup_start=0.01,
                  warmup_steps=max(1, steps // 10), batch_size=64, steps=steps)
    recipes = {
        # the shipped demo's recipe: SGD 0.1, piecewise decay at 60 % / 85 %
        "sgd_piecewise": dict(common, optimizer="sgd", learning_rate=0.1, weight_decay=5e-4,
                              lr_schedule="piecewise",
                              lr_boundaries=(int(0.6 * steps), int(0.85 * steps))),
        # SGD 0.1 with a cosine decay to 0
        "sgd_warm_cosine": dict(common, optimizer="sgd", learning_rate=0.1, weight_decay=5e-4,
                                lr_schedule="cosine", min_lr=0.0),
        # AdamW 1e-3, cosine, decoupled weight decay
        "adamw_cosine": dict(common, optimizer="adamw", learning_rate=1e-3, weight_decay=0.05,
                             lr_schedule="cosine", min_lr=0.0),
    }
    if name not in recipes:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(recipes)}")
    return recipes[name]


#: arm -> settings that differ from the baseline
ARMS = {
    "baseline": dict(variant="baseline"),
    "cd": dict(variant="cd"),
    "cd_sr": dict(variant="cd_sr"),
    "lcd": dict(variant="lcd"),
    "cd_branch": dict(variant="cd", lcd_position="branch"),
    "lcd_branch": dict(variant="lcd", lcd_position="branch"),
    "cd_stage2": dict(variant="cd", lcd_stage=2),
    "cd_stage4": dict(variant="cd", lcd_stage=4),
    "cutout": dict(variant="cutout"),
    "dropblock": dict(variant="dropblock"),
    "wcd": dict(variant="wcd"),
    "baseline_occ": dict(variant="baseline", train_occlusion="mask,sunglasses,block"),
}
CLAIMS = {
    "table2": ("baseline", "cd", "cd_sr", "lcd"),
    "position": ("cd_branch", "lcd_branch"),
    "table1": ("cd_stage2", "cd_stage4"),
    "table3": ("cutout", "dropblock", "wcd"),
    "occlusion_training": ("baseline_occ",),
}
#: (claim, arm a, arm b, metric): what each verdict compares
COMPARISONS = [
    ("LCD helps on occluded faces (Table II)", "lcd", "baseline", "occluded_accuracy"),
    ("CD helps on occluded faces (Table II)", "cd", "baseline", "occluded_accuracy"),
    ("SR adds to CD (Table II)", "cd_sr", "cd", "occluded_accuracy"),
    ("SAM adds to CD+SR (Table II)", "lcd", "cd_sr", "occluded_accuracy"),
    ("LCD keeps clean accuracy (Table II)", "lcd", "baseline", "clean_accuracy"),
    ("output placement beats branch placement (cd)", "cd", "cd_branch", "occluded_accuracy"),
    ("output placement beats branch placement (lcd)", "lcd", "lcd_branch", "occluded_accuracy"),
    ("stage 3 beats stage 2 (Table I)", "cd", "cd_stage2", "occluded_accuracy"),
    ("stage 3 beats stage 4 (Table I)", "cd", "cd_stage4", "occluded_accuracy"),
    ("LCD beats Cutout (Table III)", "lcd", "cutout", "occluded_accuracy"),
    ("LCD beats DropBlock (Table III)", "lcd", "dropblock", "occluded_accuracy"),
    ("LCD beats WCD (Table IV)", "lcd", "wcd", "occluded_accuracy"),
    ("LCD beats training on synthetic occlusion", "lcd", "baseline_occ", "occluded_accuracy"),
    ("SR makes stage-3 channels more local", "cd_sr", "cd", "top10_share"),
    ("LCD lowers Eq. 8 (stage 4 compensates dropped channels)", "baseline", "lcd",
     "eq8_rate0.5"),
    ("CD lowers Eq. 8 (stage 4 compensates dropped channels)", "baseline", "cd",
     "eq8_rate0.5"),
    ("SR makes stage-3 channels more local than the baseline's", "cd_sr", "baseline",
     "top10_share"),
]


def run_config(arm, seed, recipe_name, steps, data_dir, lfw_root, model_dir):
    """The :class:`occface.train.RecognizerConfig` dict of one run."""
    cfg = dict(
        data_dir=str(data_dir), input_size=64, augment=True, in_memory=True,
        lfw_pairs=str(pathlib.Path(lfw_root) / "pairs.txt"), train_folds=tuple(range(6)),
        include_unpaired=True, min_images_per_identity=3,
        depth=18, width=16, embedding_size=512, lcd_stage=3, lcd_position="output", sam_stage=4,
        lcd_min_rate=0.0, lcd_max_rate=0.6, sr_filter_weight=100.0, sr_response_weight=1.0,
        sr_reduction="mean", seed=int(seed), model_dir=str(model_dir),
        checkpoint_interval=250, keep_checkpoints=1, summary_interval=100)
    cfg.update(recipe(recipe_name, steps))
    cfg.update(ARMS[arm])
    return cfg


def _load(model_path, data_dir, lfw_root):
    """``(model, LFW pairs, EmbeddingCache)`` of a trained run on the aligned faces."""
    import keras
    from occface.evaluation import EmbeddingCache, FaceSource, lfw_pair_set
    import occface.layers  # noqa: F401  (registers occface's Keras objects for loading)
    import occface.models  # noqa: F401
    model = keras.saving.load_model(model_path, compile=False)
    return (model, lfw_pair_set(lfw_root, image_root=data_dir),
            EmbeddingCache(model, FaceSource("aligned", 112), batch_size=128))


def evaluate_run(model_path, data_dir, lfw_root, occlusion_seeds, validation_only=False):
    """Held-out verification and the locality / Eq. 8 figures of a trained model."""
    import numpy as np
    from occface.evaluation.heldout import (TEST_OCCLUSIONS, condition_scores, heldout_evaluation,
                                            score_condition, subset_pairs)
    from occface.evaluation.locality import channel_drop_robustness
    from occface.evaluation.verification import best_threshold
    model, pairs, cache = _load(model_path, data_dir, lfw_root)
    if validation_only:
        val = subset_pairs(pairs, (6,))
        scores = condition_scores(cache, val)
        t, _ = best_threshold(scores, val.issame)
        return {"validation": score_condition(scores, val.issame, val.folds, t)}
    out = heldout_evaluation(cache, pairs, occlusions=TEST_OCCLUSIONS,
                             occlusion_seeds=tuple(occlusion_seeds))
    test = subset_pairs(pairs, (7, 8, 9))
    keys = list(dict.fromkeys(test.keys_a))[:256]
    import cv2
    size = model.input_shape[1]
    faces = np.stack([cv2.resize(cache.source.get(k)[0], (size, size),
                                 interpolation=cv2.INTER_AREA) for k in keys]).astype("float32")
    out["locality"] = channel_drop_robustness(model, faces, rates=(0.25, 0.5), stage=3)
    return out


def _flat(run):
    """The figures a claim compares, from one run's JSON."""
    if "test" not in run:
        return {}
    test = run["test"]
    occluded = [v["mean"]["accuracy"] for k, v in test.items() if k != "none"]
    loc = run.get("locality", {})
    return {"clean_accuracy": test["none"]["mean"]["accuracy"],
            "occluded_accuracy": float(sum(occluded) / len(occluded)),
            **{f"{k}_accuracy": v["mean"]["accuracy"] for k, v in test.items() if k != "none"},
            "clean_tar_1e-2": test["none"]["mean"]["tar_at_far"],
            "mean_impostor_cosine": run["mean_impostor_cosine"],
            "top10_share": loc.get("top10_share", float("nan")),
            "eq8_rate0.5": loc.get("eq8_relative_mse", {}).get("0.5", float("nan")),
            **({"eq8_image": float(sum(run["eq8_image"].values()) / len(run["eq8_image"]))}
               if run.get("eq8_image") else {})}


def rescore_eq8_image(results_dir, runs_dir, data_dir, lfw_root, occlusion_seeds):
    """Add ``eq8_image`` to the result JSONs that lack it and whose model is in ``runs_dir``.

    The model is checked to be the one the JSON scored: its clean mean impostor cosine on the
    test folds must match the JSON's to 1e-4, else the JSON is left as it is.
    """
    import json
    import numpy as np
    from occface.evaluation.heldout import (TEST_OCCLUSIONS, condition_scores,
                                            occlusion_feature_robustness, subset_pairs)
    from occface.utils import git_commit, write_json
    for path in sorted(results_dir.glob("*_s*.json")):
        run = json.loads(path.read_text())
        model_path = pathlib.Path(runs_dir) / path.stem / "model.keras"
        if path.name.startswith("recipe_") or "eq8_image" in run or not model_path.is_file():
            continue
        _, pairs, cache = _load(model_path, data_dir, lfw_root)
        test = subset_pairs(pairs, run["test_folds"])
        scores = condition_scores(cache, test)
        impostor = float(np.mean(scores[~test.issame]))
        if abs(impostor - run["mean_impostor_cosine"]) > 1e-4:
            print(f"{path.name}: model at {model_path} is not the scored one (impostor cosine "
                  f"{impostor:.5f} vs {run['mean_impostor_cosine']:.5f}); left as it is")
            continue
        run["eq8_image"] = occlusion_feature_robustness(cache, test, TEST_OCCLUSIONS,
                                                        occlusion_seeds)
        run["eq8_image_git_commit"] = git_commit()
        write_json(path, run)
        print(f"{path.name}: eq8_image " + ", ".join(f"{k} {v:.3f}"
                                                     for k, v in run["eq8_image"].items()),
              flush=True)


def summarize(results_dir):
    """``summary.json`` / ``summary.md``: mean ± 95 % CI per arm and a verdict per claim."""
    import json
    from occface.evaluation.stats import claim_result, mean_ci, paired_verdict
    from occface.utils import write_json
    runs = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*_s*.json"))
            if not p.name.startswith("recipe_")]
    by = {}
    for r in runs:
        by.setdefault((r["arm"], r["recipe"]["name"]), {})[r["seed"]] = _flat(r)
    table = {}
    for (arm, rec), seeds in sorted(by.items()):
        row = {"seeds": sorted(seeds)}
        for metric in dict.fromkeys(k for f in seeds.values() for k in f):
            have = [s for s in sorted(seeds) if metric in seeds[s]]  # eq8_image: rescored only
            m, h = mean_ci([seeds[s][metric] for s in have])
            row[metric] = {"mean": m, "ci95": h, "n": len(have)}
        table[f"{arm}/{rec}"] = row
    verdicts = []
    for claim, a, b, metric in COMPARISONS:
        for (arm_a, rec), sa in by.items():
            sb = by.get((b, rec))
            if arm_a != a or not sb:
                continue
            seeds = sorted(s for s in set(sa) & set(sb) if metric in sa[s] and metric in sb[s])
            if not seeds:
                continue
            v = paired_verdict([sa[s][metric] for s in seeds], [sb[s][metric] for s in seeds])
            holds = claim_result(v)
            verdicts.append(dict(claim=claim, a=a, b=b, recipe=rec, metric=metric, seeds=seeds,
                                 **v, result=holds))
    write_json(results_dir / "summary.json", {"arms": table, "claims": verdicts})
    lines = ["| arm / recipe | seeds | clean acc | occluded acc (mean of 5) | mask | sunglasses "
             "| impostor cos | top-10 % share | Eq. 8 (rate 0.5) | Eq. 8, image occlusion |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in table.items():
        def cell(k, scale=100.0, digits=2):
            if k not in row:
                return "–"
            n = "" if row[k]["n"] == len(row["seeds"]) else f" (n = {row[k]['n']})"
            return (f"{row[k]['mean'] * scale:.{digits}f} ± {row[k]['ci95'] * scale:.{digits}f}"
                    + n)
        lines.append(f"| {name} | {len(row['seeds'])} | {cell('clean_accuracy')} | "
                     f"{cell('occluded_accuracy')} | {cell('mask_accuracy')} | "
                     f"{cell('sunglasses_accuracy')} | {cell('mean_impostor_cosine', 1, 3)} | "
                     f"{cell('top10_share', 1, 3)} | {cell('eq8_rate0.5', 1, 3)} | "
                     f"{cell('eq8_image', 1, 3)} |")
    lines += ["", "| claim | a − b (metric) | seeds | difference ± 95 % CI | verdict |",
              "|---|---|---|---:|---|"]
    for v in verdicts:
        scale = 100.0 if v["metric"].endswith("accuracy") else 1.0
        lines.append(f"| {v['claim']} | {v['a']} − {v['b']} ({v['metric']}) | "
                     f"{len(v['seeds'])} | {v['mean_diff'] * scale:+.3f} ± "
                     f"{v['ci95'] * scale:.3f} | {v['result']} |")
    (results_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def flagfile(cfg):
    """``tools/train_recognizer.py`` flagfile lines for a run config dict."""
    lines = []
    for key, value in cfg.items():
        if isinstance(value, bool):
            lines.append(f"--{key}" if value else f"--no{key}")
        elif isinstance(value, (tuple, list)):
            lines.append(f"--{key}={','.join(map(str, value))}")
        else:
            lines.append(f"--{key}={value}")
    return "\n".join(lines)


def main(argv):
    del argv
    from occface.paths import data_root
    from occface.utils import run_metadata, write_json
    lfw_root = pathlib.Path(FLAGS.lfw_root) if FLAGS.lfw_root else data_root() / "lfw"
    if FLAGS.print_flagfile:
        if FLAGS.print_flagfile not in ARMS:
            sys.exit(f"reproduce: unknown arm {FLAGS.print_flagfile!r}; choose from "
                     f"{', '.join(ARMS)}")
        seed = int(FLAGS.seeds[0])
        print(flagfile(run_config(FLAGS.print_flagfile, seed, FLAGS.recipe, FLAGS.steps,
                                  FLAGS.data_dir, lfw_root, pathlib.Path(FLAGS.runs_dir)
                                  / f"{FLAGS.print_flagfile}_{FLAGS.recipe}_s{seed}")))
        return
    results_dir = pathlib.Path(FLAGS.results_dir) if FLAGS.results_dir else RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    if FLAGS.summarize:
        summarize(results_dir)
        return
    if FLAGS.rescore_eq8_image:
        for flag, path in (("runs_dir", FLAGS.runs_dir), ("data_dir", FLAGS.data_dir)):
            if not pathlib.Path(path).is_dir():
                sys.exit(f"reproduce: --{flag}={path} is not a directory (--rescore_eq8_image "
                         f"reads the models and the aligned faces there)")
        rescore_eq8_image(results_dir, FLAGS.runs_dir, FLAGS.data_dir, lfw_root,
                          [int(s) for s in FLAGS.occlusion_seeds])
        summarize(results_dir)
        return
    if not pathlib.Path(FLAGS.data_dir).is_dir():
        sys.exit(f"reproduce: aligned LFW not found: --data_dir={FLAGS.data_dir} (run "
                 f"tools/prepare_dataset.py first, see the README)")
    plan = []
    for claim in FLAGS.claims:
        if claim == "recipe":
            for name in FLAGS.probe_recipes:
                plan += [("baseline", name, int(s), True) for s in FLAGS.seeds]
        elif claim in CLAIMS:
            arms = [a for a in FLAGS.arms if a in CLAIMS[claim]] if FLAGS.arms else CLAIMS[claim]
            plan += [(arm, FLAGS.recipe, int(s), False) for s in FLAGS.seeds for arm in arms]
        else:
            sys.exit(f"reproduce: unknown claim {claim!r}; choose from recipe, "
                     f"{', '.join(CLAIMS)}")
    from occface.train import RecognizerConfig, train_recognizer
    done = 0
    for arm, rec, seed, validation_only in plan:
        tag = f"recipe_{rec}_s{seed}" if validation_only else f"{arm}_{rec}_s{seed}"
        out = results_dir / f"{tag}.json"
        if out.exists():
            continue
        if FLAGS.max_runs and done >= FLAGS.max_runs:
            break
        model_dir = pathlib.Path(FLAGS.runs_dir) / tag
        probe = pathlib.Path(FLAGS.runs_dir) / f"recipe_{rec}_s{seed}"
        if arm == "baseline" and not validation_only and not model_dir.exists() \
                and (probe / "model.keras").is_file():
            model_dir = probe  # the recipe probe trained this very run (same config and seed)
        cfg = run_config(arm, seed, rec, FLAGS.steps, FLAGS.data_dir, lfw_root, model_dir)
        print(f"== {tag}", flush=True)
        t0 = time.time()
        result = train_recognizer(RecognizerConfig.from_dict(cfg))
        train_s = time.time() - t0
        scores = evaluate_run(result["model_path"], FLAGS.data_dir, lfw_root,
                              [int(s) for s in FLAGS.occlusion_seeds], validation_only)
        record = {"arm": arm, "variant": cfg["variant"], "seed": seed,
                  "lcd_position": cfg["lcd_position"], "lcd_stage": cfg["lcd_stage"],
                  "recipe": {"name": rec, **recipe(rec, FLAGS.steps)}, "config": cfg,
                  "training": {k: result.get(k) for k in ("step", "final", "images_per_sec")},
                  "train_seconds": train_s, "eval_seconds": time.time() - t0 - train_s,
                  **scores, **run_metadata()}
        first = scores.get("test", {}).get("none") or {"mean": scores["validation"]}
        record["mean_impostor_cosine"] = first["mean"]["mean_impostor_cosine"]
        write_json(out, record)
        done += 1
        print(f"{tag}: impostor cosine {record['mean_impostor_cosine']:.3f}, "
              + ", ".join(f"{k} {v['mean']['accuracy']:.4f}" for k, v in
                          scores.get("test", {}).items())
              + (f"val {scores['validation']['accuracy']:.4f}" if validation_only else ""),
              flush=True)
    summarize(results_dir)


if __name__ == "__main__":
    app.run(main)
