"""ID-GAN with a strong frozen recognizer: w/oID vs wID vs a larger identity weight, seeds.

Issue #16, item 1–2. Every arm starts from the same reconstruction-only warm-up of its seed and
trains the adversarial + structure (+ identity) stage for the same number of steps, with holes
drawn from the package's occlusion synthesis (blocks, MaskTheFace masks, sunglasses). The frozen
recognizer R of the identity terms is insightface's ArcFace MobileFaceNet imported from ONNX
(``occface.models.import_onnx``; non-commercial research licence, and so is every generator
trained through it). Arms::

    woid        identity_weight 0 (adversarial + structure only; the paper's "w/oID")
    wid         identity_weight 2e-4 (the paper's lambda_R)
    wid_large   identity_weight --large_identity_weight (the terms at a weight that moves the loss)

Each run is scored on LFW folds 7–9 (0-based, identities no generator or evaluator trained on),
one face of each pair occluded (one occlusion seed, the same holes for every method), for each
occlusion kind, by every evaluator: ``dlib`` (dlib's ResNet, :mod:`occface.models.dlib_peer`:
strong and independent of R — other data, other code), ``demo`` (occface's IR-ResNet-18, never in
any loss, weak; the study in ``benchmarks/results/idgan_mbf`` was scored with the demo as of git
``6707e24``, before its held-out retrain — new runs scored by today's demo are not comparable in that
column), ``occ_ft`` (occface's occlusion fine-tune of the MobileFaceNet — shares R's
pretraining, so not independent) and ``mbf`` (R itself, for reference). ``--rescore`` scores an
evaluator added after a JSON was written into it (the fills are recomputed, and their PSNR must
equal the stored one). The test holes are drawn per image from ``(--occlusion_seed, image path)``
with the path as ``--data_dir`` spells it: keep its spelling (default ``runs/lfw112``) for every
run and rescore of one study, or the holes — and the PSNR check — differ. The rows that need no generator (GT, OCC,
Telea, NS) are scored once into ``reference.json``.

Outputs (skipped when they exist, so the study resumes across sessions)::

    benchmarks/results/idgan_mbf/reference.json
    benchmarks/results/idgan_mbf/<arm>_s<seed>.json   keys: arm, seed, identity_weight, config,
        training, eval (kind -> PSNR/SSIM and per-evaluator accuracy / identity similarity),
        git_commit, ...
    benchmarks/results/idgan_mbf/summary.{json,md}     (--summarize, also after the runs)

Usage::

    python benchmarks/idgan_study.py --seeds 0,1,2              # all arms, 3 seeds
    python benchmarks/idgan_study.py --rescore                  # add a new evaluator's scores
    python benchmarks/idgan_study.py --summarize
"""

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("arms", ["woid", "wid", "wid_large"], "Arms to run, in this order.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds (a warm-up per seed).")
flags.DEFINE_integer("image_size", 64, "Face side of the generator.", lower_bound=16)
flags.DEFINE_integer("warmup_steps", 1000, "Reconstruction-only warm-up steps.", lower_bound=1)
flags.DEFINE_integer("adversarial_steps", 500, "Steps of the full objective per arm.",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Batch size.", lower_bound=1)
flags.DEFINE_float("large_identity_weight", 0.05, "identity_weight of the wid_large arm.")
flags.DEFINE_list("kinds", ["block", "mask", "sunglasses"], "Test occlusion kinds.")
flags.DEFINE_integer("occlusion_seed", 0, "Test occlusion seed (the same holes for every row).")
flags.DEFINE_string("data_dir", "runs/lfw112", "Aligned LFW (tools/prepare_dataset.py output).")
flags.DEFINE_string("lfw_root", None, "LFW folder with pairs.txt (default: the shared data).")
flags.DEFINE_string("onnx", None, "R's ONNX (default: the shared arcface_mbf_w600k).")
flags.DEFINE_list("evaluators", ["demo=saved_models/lcd_ir18_w16_lfw",
                                 "occ_ft=saved_models/arcface_mbf_occ_ft", "dlib=dlib"],
                  "name=path (any form load_embedding_model reads, or 'dlib') of the "
                  "recognizers that score the rows (R is added as 'mbf').")
flags.DEFINE_string("runs_dir", "runs/idgan_mbf", "Where warm-ups and generators are trained.")
flags.DEFINE_string("results_dir", None, "Result JSONs (default benchmarks/results/idgan_mbf).")
flags.DEFINE_bool("summarize", False, "Only write the summary of the JSONs there are.")
flags.DEFINE_bool("rescore", False, "Only add the scores of evaluators missing from the JSONs "
                  "there are (an evaluator added later), then summarize; no training.")

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "idgan_mbf"
ARMS = ("woid", "wid", "wid_large")
#: clean_cache of every score() call in this process (keyed by evaluator and the faces)
_CLEAN_EMBEDDINGS = {}
#: the rows scored once (no generator)
REFERENCE_ROWS = ("OCC", "Telea", "NS")


def identity_weight(arm):
    """lambda_R of an arm."""
    return {"woid": 0.0, "wid": 2e-4, "wid_large": FLAGS.large_identity_weight}[arm]


def base_config(seed, model_dir, parser_path):
    """The IDGANConfig dict shared by warm-ups and arms."""
    return dict(data_dir=FLAGS.data_dir, image_size=FLAGS.image_size, augment=True,
                hole_kinds=("block", "mask", "sunglasses"),
                lfw_pairs=str(lfw_root() / "pairs.txt"), train_folds=tuple(range(7)),
                include_unpaired=True, gen_width=16, critic_width=16,
                parser_path=str(parser_path), batch_size=FLAGS.batch_size, seed=int(seed),
                model_dir=str(model_dir), checkpoint_interval=250, keep_checkpoints=1,
                summary_interval=50, image_interval=0)


def lfw_root():
    from occface.paths import data_root
    return pathlib.Path(FLAGS.lfw_root) if FLAGS.lfw_root else data_root() / "lfw"


def recognizer_path(runs):
    """R as a .keras file, imported from the ONNX once."""
    path = runs / "mbf" / "model.keras"
    if not path.is_file():
        from occface.models import import_onnx
        from occface.paths import data_root
        from occface.train.checkpoint import save_keras_atomic
        onnx = FLAGS.onnx or data_root() / "models" / "arcface_mbf_w600k" / "w600k_mbf.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_keras_atomic(import_onnx(str(onnx)), path)
    return path


def parser_path(runs):
    """The face parser of the structure loss, trained once and shared by every run."""
    path = runs / "parser.keras"
    if not path.is_file():
        from occface.inpainting.config import IDGANConfig
        from occface.train.data import training_identities
        from occface.inpainting.frozen import prepare_parser
        cfg = IDGANConfig(**dict(base_config(0, runs / "parser_run", ""), parser_path=""))
        (runs / "parser_run").mkdir(parents=True, exist_ok=True)
        # trained on the training identities only, as train_idgan does
        prepare_parser(cfg, runs / "parser_run", training_identities(cfg))
        os.replace(runs / "parser_run" / "parser.keras", path)
    return path


def train(cfg):
    from occface.inpainting.config import IDGANConfig
    from occface.inpainting.trainer import train_idgan
    return train_idgan(IDGANConfig(**cfg))


def warmup(seed, runs, parser):
    """The reconstruction-only generator of a seed (shared by its arms)."""
    model_dir = runs / f"warmup_s{seed}"
    if not (model_dir / "generator.keras").is_file() or not (model_dir / "done").exists():
        cfg = dict(base_config(seed, model_dir, parser), steps=FLAGS.warmup_steps,
                   warmup_steps=FLAGS.warmup_steps, identity_weight=0.0)
        train(cfg)
        (model_dir / "done").write_text("ok\n")
    return model_dir / "generator.keras"


def evaluators(runs):
    from occface.models.io import load_embedding_model
    out = {}
    for spec in FLAGS.evaluators:
        name, _, path = spec.partition("=")
        out[name] = load_embedding_model(path)
    out["mbf"] = load_embedding_model(recognizer_path(runs))
    return out


def score(methods, recognizers):
    """``{kind: report}`` of :func:`evaluate_inpainting_pairs` on LFW folds 7–9."""
    if not recognizers:  # a run scored by no evaluator says nothing about identity
        raise ValueError("idgan_study.score: no evaluators to score with")
    from occface.evaluation import FaceSource, lfw_pair_set
    from occface.evaluation.heldout import subset_pairs
    from occface.inpainting.evaluate import evaluate_inpainting_pairs
    pairs = subset_pairs(lfw_pair_set(lfw_root(), image_root=FLAGS.data_dir), (7, 8, 9))
    source = FaceSource("aligned", FLAGS.image_size)
    out, cache = {}, _CLEAN_EMBEDDINGS  # the clean faces' embeddings: the same for every run
    for kind in FLAGS.kinds:
        report = evaluate_inpainting_pairs(pairs, source, methods, kind=kind,
                                           seed=FLAGS.occlusion_seed, occlude="one",
                                           recognizers=recognizers, clean_cache=cache)
        report.pop("examples", None)
        out[kind] = report
    return out


def rescore(results_dir, runs, scorers):
    """Score the evaluators of ``scorers`` that a result JSON lacks into it (in place)."""
    import json
    from occface.inpainting.evaluate import inpainting_methods
    from occface.utils import git_commit, write_json
    for path in sorted(results_dir.glob("*.json")):
        if path.name.startswith("summary"):
            continue
        meta = json.loads(path.read_text())
        have = set.intersection(*(set(r.get("recognizers", {})) for r in meta["eval"].values()))
        missing = [name for name in scorers if name not in have]
        if not missing:
            continue
        if "arm" in meta:
            gen = runs / f"{meta['arm']}_s{meta['seed']}" / "generator.keras"
            if not gen.is_file():
                print(f"rescore: {path.name} lacks {missing} but {gen} is gone; skipped")
                continue
            methods = inpainting_methods({meta["arm"]: str(gen)}, classical=(),
                                         include_occ=False)
        else:
            methods = inpainting_methods()
        t0 = time.time()
        ev = score(methods, {name: scorers[name] for name in missing})
        for kind, report in ev.items():
            for method, row in report["methods"].items():
                stored = meta["eval"][kind]["methods"][method]
                if abs(row["psnr"] - stored["psnr"]) > 1e-3:
                    sys.exit(f"idgan_study: rescoring {path.name} ({kind}, {method}) filled other "
                             f"faces than the stored run: PSNR {row['psnr']:.4f} vs "
                             f"{stored['psnr']:.4f}; not written")
            meta["eval"][kind].setdefault("recognizers", {}).update(report["recognizers"])
        meta.setdefault("rescored", []).append(
            {"evaluators": missing, "git_commit": git_commit(), "seconds": time.time() - t0,
             "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        write_json(path, meta)
        print(f"rescored {path.name}: added {', '.join(missing)}")


def summarize(results_dir):
    """Mean ± 95 % CI per row, and the paired verdicts of OCC < w/oID < wID."""
    import json
    from occface.evaluation.stats import mean_ci, paired_verdict
    from occface.utils import write_json
    ref_path = results_dir / "reference.json"
    ref = json.loads(ref_path.read_text()) if ref_path.exists() else None
    runs = {}
    for p in sorted(results_dir.glob("*_s*.json")):
        r = json.loads(p.read_text())
        runs.setdefault(r["arm"], {})[r["seed"]] = r
    if ref is None and not runs:
        print("no results yet")
        return
    kinds = list((ref or next(iter(next(iter(runs.values())).values())))["eval"])
    table, verdicts, figs = {}, [], {}

    def figures(report, method, kind):
        row = report[kind]["methods"][method]
        out = {"psnr": row["psnr"], "ssim": row["ssim"]}
        for ev, scored in report[kind].get("recognizers", {}).items():
            out[f"{ev}_accuracy"] = scored["methods"][method]["accuracy"]
            out[f"{ev}_identity"] = scored["methods"][method]["identity_similarity"]
        return out

    for kind in kinds:
        if ref:
            rep = ref["eval"]
            gt = {f"{ev}_accuracy": s["clean"]["accuracy"]
                  for ev, s in rep[kind].get("recognizers", {}).items()}
            table[f"{kind}/GT"] = {k: {"mean": v, "ci95": 0.0} for k, v in gt.items()}
            table[f"{kind}/GT"]["seeds"] = []
            for method in REFERENCE_ROWS:
                f = figures(rep, method, kind)
                table[f"{kind}/{method}"] = dict({k: {"mean": v, "ci95": 0.0}
                                                  for k, v in f.items()}, seeds=[])
        for arm, seeds in runs.items():
            per_seed = {s: figures(r["eval"], arm, kind) for s, r in seeds.items()}
            row = {"seeds": sorted(per_seed)}
            # a metric every seed has (an evaluator may be missing until --rescore)
            for metric in [k for k in next(iter(per_seed.values()))
                           if all(k in f for f in per_seed.values())]:
                m, h = mean_ci([per_seed[s][metric] for s in sorted(per_seed)])
                row[metric] = {"mean": m, "ci95": h}
            table[f"{kind}/{arm}"] = row
            figs[arm, kind] = per_seed
        if ref:  # a reference row is one deterministic number: the same for every seed
            for method in REFERENCE_ROWS:
                f = figures(ref["eval"], method, kind)
                figs[method, kind] = {s: f for arm in runs for s in runs[arm]}
        for a, b in (("wid", "woid"), ("wid_large", "woid"), ("wid_large", "wid"),
                     ("woid", "OCC"), ("wid", "OCC"), ("wid_large", "OCC"),
                     ("woid", "Telea"), ("wid", "Telea"), ("wid_large", "Telea")):
            if (a, kind) not in figs or (b, kind) not in figs:
                continue
            fa, fb = figs[a, kind], figs[b, kind]
            seeds = sorted(set(fa) & set(fb))
            for metric in [k for k in (fa[seeds[0]] if seeds else ())
                           if all(k in fa[s] and k in fb[s] for s in seeds)]:
                v = paired_verdict([fa[s][metric] for s in seeds],
                                   [fb[s][metric] for s in seeds])
                verdicts.append(dict(kind=kind, a=a, b=b, metric=metric, seeds=seeds, **v))
    write_json(results_dir / "summary.json", {"rows": table, "paired": verdicts})
    evs = sorted({k[:-len("_accuracy")] for row in table.values() for k in row
                  if k.endswith("_accuracy")})
    head = "| occlusion / row | seeds | PSNR | SSIM | " + " | ".join(
        f"{e} acc % | {e} id-cos" for e in evs) + " |"
    lines = [head, "|" + "---|" * (4 + 2 * len(evs))]
    for name, row in table.items():
        def cell(k, scale=1.0, digits=3):
            if k not in row:
                return "–"
            m, h = row[k]["mean"] * scale, row[k]["ci95"] * scale
            return f"{m:.{digits}f}" + (f" ± {h:.{digits}f}" if row["seeds"] else "")
        cells = [cell("psnr", 1, 2), cell("ssim", 1, 4)]
        for e in evs:
            cells += [cell(f"{e}_accuracy", 100, 2), cell(f"{e}_identity")]
        lines.append(f"| {name} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "| occlusion | a − b | metric | seeds | difference ± 95 % CI | verdict |",
              "|---|---|---|---|---:|---|"]
    for v in verdicts:
        scale = 100.0 if v["metric"].endswith("accuracy") else 1.0
        lines.append(f"| {v['kind']} | {v['a']} − {v['b']} | {v['metric']} | {len(v['seeds'])} "
                     f"| {v['mean_diff'] * scale:+.3f} ± {v['ci95'] * scale:.3f} "
                     f"| {v['verdict']} |")
    (results_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv):
    del argv
    from occface.utils import run_metadata, write_json
    results_dir = pathlib.Path(FLAGS.results_dir) if FLAGS.results_dir else RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    if FLAGS.summarize:
        summarize(results_dir)
        return
    bad = [a for a in FLAGS.arms if a not in ARMS]
    if bad:
        sys.exit(f"idgan_study: unknown arm {bad[0]!r}; choose from {', '.join(ARMS)}")
    if not pathlib.Path(FLAGS.data_dir).is_dir():
        sys.exit(f"idgan_study: aligned LFW not found: --data_dir={FLAGS.data_dir} (run "
                 "tools/prepare_dataset.py first, see the README)")
    runs = pathlib.Path(FLAGS.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    settings = {name: FLAGS[name].value for name in (
        "image_size", "warmup_steps", "adversarial_steps", "batch_size", "large_identity_weight",
        "kinds", "occlusion_seed", "data_dir", "evaluators")}
    scorers = None
    ref_path = results_dir / "reference.json"
    if not ref_path.exists():
        from occface.inpainting.evaluate import inpainting_methods
        scorers = evaluators(runs)
        t0 = time.time()
        ev = score(inpainting_methods(), scorers)
        meta = run_metadata(dict(settings, rows=list(REFERENCE_ROWS)))
        meta.update(eval=ev, eval_seconds=time.time() - t0)
        write_json(ref_path, meta)
        print(f"wrote {ref_path}")
    if FLAGS.rescore:
        rescore(results_dir, runs, scorers or evaluators(runs))
        summarize(results_dir)
        return
    r_path = recognizer_path(runs)
    parser = None
    for seed in (int(s) for s in FLAGS.seeds):
        for arm in FLAGS.arms:
            out = results_dir / f"{arm}_s{seed}.json"
            if out.exists():
                continue
            parser = parser or parser_path(runs)
            init = warmup(seed, runs, parser)
            model_dir = runs / f"{arm}_s{seed}"
            weight = identity_weight(arm)
            cfg = dict(base_config(seed, model_dir, parser), steps=FLAGS.adversarial_steps,
                       warmup_steps=0, identity_weight=weight, init_generator=str(init),
                       recognizer_path=str(r_path) if weight > 0 else "")
            t0 = time.time()
            result = train(cfg)
            train_seconds = time.time() - t0
            from occface.inpainting.evaluate import inpainting_methods
            scorers = scorers or evaluators(runs)  # loaded once, after the first training run
            t0 = time.time()
            ev = score(inpainting_methods({arm: result["generator_path"]}, classical=(),
                                          include_occ=False), scorers)
            meta = run_metadata(settings)
            meta.update(arm=arm, seed=seed, identity_weight=weight, config=cfg,
                        training={k: result[k] for k in ("step", "final", "images_per_sec",
                                                         "skipped_steps")},
                        train_seconds=train_seconds, eval=ev, eval_seconds=time.time() - t0)
            write_json(out, meta)
            print(f"wrote {out}")
    summarize(results_dir)


if __name__ == "__main__":
    app.run(main)
