"""Does the occlusion-aware cascade (estimate the mask, inpaint, then embed) help on REAL masks?

The RMFRD masked -> unmasked protocol of :mod:`occface.evaluation.rmfrd` (YuNet at 0.6 without
the padded retry, ArcFace 112 template, the ``resize`` crop fallback; every masked probe x every
unmasked gallery image; balanced accuracy over 10 folds by probe, TAR@FAR over all pairs, rank-1
against the whole gallery: :func:`~occface.evaluation.rmfrd_protocol.evaluate_rmfrd_features`)
where each masked PROBE face is, before embedding,

* ``direct``: embedded as it is;
* ``telea`` / ``ns``: the shipped occlusion segmenter's ESTIMATED mask
  (:func:`occface.occlusion_estimate.default_occlusion_estimator`, exactly what
  ``tools/verify.py`` computes) filled by OpenCV Telea / Navier-Stokes
  (:func:`occface.inpainting.classical.classical_inpaint`);
* ``idgan``: the same estimated mask filled by the shipped ID-GAN generator export
  ``saved_models/idgan_wid_lfw64`` through its ``inpaint`` signature (112-px faces in, the 64-px
  generator inside the graph, :func:`occface.inpainting.generator.make_inpaint_fn`).

As in :class:`occface.verify.FaceVerifier`, a face is filled only when the segmenter counts it
occluded (:func:`~occface.occlusion_estimate.describe_mask`: >= 5 % of the face region), with its
mask (:func:`occface.occlusion_estimate.fill_estimated_occlusion`). Gallery (unmasked) faces are
always embedded directly. Recognizers:

* ``mbf``: insightface's ArcFace MobileFaceNet ``w600k_mbf`` imported into Keras
  (:func:`occface.models.import_onnx`), no flip-test (the protocol's default). Non-commercial
  research licence (insightface).
* ``ft``: the shipped fine-tuned export ``saved_models/arcface_mbf_occ_ft``
  (:func:`occface.models.io.load_embedding_model`; its ``embed`` signature flip-tests inside the
  graph). Derived from insightface's weights: same licence.
* ``lcd``: the demo LCD recognizer export ``saved_models/lcd_ir18_w16_lfw`` (occface-trained,
  unencumbered; flip-test inside its graph): the recognizer inside the cascade export
  ``saved_models/lcd_idgan_cascade``, whose ``inpaint`` is the same ID-GAN generator, so
  ``lcd`` + ``idgan`` is what that cascade's ``verify_masked`` computes for an occluded probe
  against an unmasked face (its stored policy inpaints every region).

Each fill is compared with ``direct`` per recognizer over the protocol's 10 probe folds (fold
balanced accuracy and fold rank-1, paired: :func:`occface.evaluation.stats.paired_verdict`, a
paired t-test at 5 %). RMFRD is evaluation only: nothing here is tuned on it (the segmenter, its
threshold, the fills and the recognizers are used as shipped).

    OCCFACE_DATA=/work/shared/data nice -n 19 python benchmarks/cascade_rmfrd.py \\
        --cache_dir runs/rmfrd_faces

Prints a markdown table and writes benchmarks/results/cascade_rmfrd.json and
benchmarks/results/cascade_rmfrd.md. About 5 minutes on 2 busy CPU cores (1,720 crops detected
once, the gallery embedded once per recognizer, the 362 probes once per recognizer and fill).
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cascade_rmfrd.json"
FILLS = ("direct", "telea", "ns", "idgan")
RECOGNIZERS = ("mbf", "ft", "lcd")
LICENCE = ("Recognizers mbf (insightface's w600k_mbf weights) and ft (derived from them): "
           "insightface releases its pretrained models for non-commercial research purposes "
           "only; their figures here are research measurements under that licence. lcd "
           "(saved_models/lcd_ir18_w16_lfw) is occface-trained and unencumbered.")
KEEP = ("accuracy", "std", "fold_accuracies", "thresholds", "fold_sizes", "best_threshold",
        "tar_at_far", "operating_points", "far_resolution", "rank1", "n_rank1_correct",
        "mean_genuine_score", "mean_impostor_score", "auc", "n_identities", "n_probes",
        "n_gallery", "n_pairs", "n_genuine", "n_impostor", "n_balanced_pairs", "n_folds")


#: table marks of a paired verdict (fill vs direct)
_MARK = {"a > b": " (better)", "a < b": " (worse)", "no significant difference": "",
         "inconclusive (one seed)": " (one fold)"}


def _figures(comparison, verdict):
    """``"balanced accuracy and rank-1"``: the figures of a comparison with that verdict."""
    return " and ".join(name for name, key in (("balanced accuracy", "balanced_accuracy"),
                                               ("rank-1", "rank1"))
                        if comparison[key]["verdict"] == verdict)


def _csv(text, allowed, flag):
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        sys.exit(f"cascade_rmfrd: error: {flag}: choose from {', '.join(allowed)}, got {text!r}")
    return items


def savedmodel_inpaint_fn(path, batch_size=32):
    """``fn(images uint8 (N, 112, 112, 3), masks (N, 112, 112, 1)) -> uint8`` through the
    ``inpaint`` signature of an inpaint / cascade export (faces of its ``aligned_size``)."""
    import tensorflow as tf
    from occface.models.io import resolve_model_path
    where = resolve_model_path(path, filename="generator.keras")
    if where.format != "savedmodel" or "inpaint" not in where.metadata.get("signatures", {}):
        sys.exit(f"cascade_rmfrd: error: --generator {path} is no SavedModel with an inpaint "
                 "signature")
    side = int(where.metadata.get("aligned_size", 112))
    signature = tf.saved_model.load(str(where.path)).signatures["inpaint"]

    def fn(images, masks):
        images = np.asarray(images, np.uint8)
        if images.shape[1:3] != (side, side):
            raise ValueError(f"the export takes {side}-px faces, got {images.shape}")
        masks = np.asarray(masks, np.float32).reshape(images.shape[:3] + (1,))
        return np.concatenate([
            signature(images=tf.constant(images[i:i + batch_size]),
                      masks=tf.constant(masks[i:i + batch_size]))["inpainted"].numpy()
            for i in range(0, len(images), batch_size)])

    return fn, {"path": str(where.path), "aligned_size": side,
                "generator_input_size": where.metadata.get("generator_input_size")}


def per_fold(values, folds, n_folds):
    """Mean of ``values`` within each fold ``0 .. n_folds - 1``."""
    values = np.asarray(values, float)
    return [float(values[folds == k].mean()) for k in range(n_folds)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = data_root()
    parser.add_argument("--data_dir", default=str(root / "rmfrd_subset"))
    parser.add_argument("--onnx", default=str(root / "models" / "arcface_mbf_w600k" /
                                              "w600k_mbf.onnx"),
                        help="insightface ArcFace ONNX (recognizer 'mbf', imported to Keras)")
    parser.add_argument("--finetuned", default=str(ROOT / "saved_models" / "arcface_mbf_occ_ft"),
                        help="recognizer 'ft' (any form occface.models.io loads)")
    parser.add_argument("--lcd", default=str(ROOT / "saved_models" / "lcd_ir18_w16_lfw"),
                        help="recognizer 'lcd' (the cascade export's recognizer)")
    parser.add_argument("--generator", default=str(ROOT / "saved_models" / "idgan_wid_lfw64"),
                        help="inpaint SavedModel export (fill 'idgan')")
    parser.add_argument("--recognizers", default=",".join(RECOGNIZERS))
    parser.add_argument("--fills", default=",".join(FILLS))
    parser.add_argument("--fallback", default="resize", help="face of a crop without detection")
    parser.add_argument("--radius", type=float, default=3.0, help="Telea / NS radius (px)")
    parser.add_argument("--seed", type=int, default=0, help="impostor draw of the balanced set")
    parser.add_argument("--n_folds", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--cache_dir", default=None, help="keep the aligned faces here")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. what was "
                        "restricted and why)")
    args = parser.parse_args()
    recognizers = _csv(args.recognizers, RECOGNIZERS, "--recognizers")
    fills = _csv(args.fills, FILLS, "--fills")
    if "direct" not in fills:
        fills = ["direct"] + fills  # the reference of every comparison

    from occface.data import FaceDetector
    from occface.evaluation import embed_images
    from occface.evaluation.identification import rank1_identification
    from occface.evaluation.protocols import FaceSource
    from occface.evaluation.rmfrd_data import FALLBACKS, crop_fallback, read_rmfrd
    from occface.evaluation.rmfrd_protocol import RMFRD_FARS, evaluate_rmfrd_features, probe_folds
    from occface.evaluation.similarity import l2_normalize
    from occface.evaluation.stats import mean_ci, paired_verdict
    from occface.inpainting.classical import classical_inpaint
    from occface.occlusion_estimate import (DEFAULT_WEIGHTS, default_occlusion_estimator,
                                            fill_estimated_occlusion)
    if args.fallback not in FALLBACKS:
        sys.exit(f"cascade_rmfrd: error: --fallback: choose from {', '.join(FALLBACKS)}")

    t_start = time.monotonic()
    timings = {}
    rmfrd = read_rmfrd(args.data_dir)
    q = len(rmfrd.probe_keys)
    keys = rmfrd.probe_keys + rmfrd.gallery_keys
    # the faces of evaluate_rmfrd(align="detect", fallback=args.fallback)
    source = FaceSource("detect", size=112, detector=FaceDetector(pad=0),
                        cache_dir=args.cache_dir, fallback=crop_fallback(args.fallback))
    t0 = time.monotonic()
    source.preload(keys)
    faces = np.stack([source.get(k)[0] for k in keys])
    found = np.array([source.get(k)[2] for k in keys])
    probes, gallery = faces[:q], faces[q:]
    timings["faces"] = round(time.monotonic() - t0, 1)
    print(f"RMFRD: {q} masked probes, {len(gallery)} unmasked gallery faces, no face found in "
          f"{int((~found[:q]).sum())} + {int((~found[q:]).sum())} crops ({args.fallback} "
          f"fallback), {timings['faces']:.0f} s", flush=True)

    # -- the estimated masks (the same for every fill) ---------------------------------------
    t0 = time.monotonic()
    estimator = default_occlusion_estimator()
    if estimator is None:
        sys.exit(f"cascade_rmfrd: error: the occlusion segmenter is not installed "
                 f"({DEFAULT_WEIGHTS})")
    inpainters = {"telea": lambda i, m: classical_inpaint(i, m, "telea", args.radius),
                  "ns": lambda i, m: classical_inpaint(i, m, "ns", args.radius)}
    generator_info = None
    if "idgan" in fills:
        inpainters["idgan"], generator_info = savedmodel_inpaint_fn(args.generator)
    filled, masks, occluded, fractions = {"direct": probes}, None, None, None
    for fill in fills[1:]:
        t1 = time.monotonic()
        filled[fill], masks, occluded, fractions = fill_estimated_occlusion(
            probes, inpainters[fill], estimator, args.batch_size)
        timings[f"fill_{fill}"] = round(time.monotonic() - t1, 1)
    if masks is None:  # direct only: still report what the segmenter sees
        _, masks, occluded, fractions = fill_estimated_occlusion(
            probes, lambda i, m: i, estimator, args.batch_size)
    _, _, g_occluded, g_fractions = fill_estimated_occlusion(
        gallery, lambda i, m: i, estimator, args.batch_size)
    timings["segment_and_fill"] = round(time.monotonic() - t0, 1)
    area = masks.reshape(q, -1).mean(axis=1)
    segmenter = {
        "weights": str(DEFAULT_WEIGHTS.relative_to(ROOT)), "threshold": estimator.threshold,
        "input_size": estimator.size,
        "probe_fraction_any_occlusion": float((masks.reshape(q, -1).max(axis=1) > 0).mean()),
        "probe_fraction_occluded": float(occluded.mean()),
        "n_probes_occluded": int(occluded.sum()),
        "probe_mean_mask_area": float(area.mean()),
        "probe_mean_mask_area_occluded": float(area[occluded].mean()) if occluded.any() else 0.0,
        "probe_mean_face_region_fraction": float(fractions.mean()),
        "gallery_fraction_occluded": float(g_occluded.mean()),
        "gallery_mean_face_region_fraction": float(g_fractions.mean()),
        "definitions": {
            "probe_fraction_any_occlusion": "probes whose estimated mask has any occluded pixel",
            "probe_fraction_occluded": "probes counted occluded by describe_mask (>= threshold "
                                       "of the face region): the ones tools/verify.py passes a "
                                       "mask for, and the only ones filled here",
            "probe_mean_mask_area": "mean fraction of the 112x112 face crop marked occluded, "
                                    "over all probes",
            "probe_mean_mask_area_occluded": "the same over the probes counted occluded",
            "probe_mean_face_region_fraction": "mean describe_mask fraction (of the face "
                                               "ellipse), over all probes"}}
    print(f"segmenter: any occlusion in {100 * segmenter['probe_fraction_any_occlusion']:.1f} % "
          f"of the probes, counted occluded (filled) {100 * occluded.mean():.1f} %, mean mask "
          f"area {100 * area.mean():.1f} % of the crop; unmasked gallery counted occluded "
          f"{100 * g_occluded.mean():.1f} %", flush=True)

    # -- recognizers --------------------------------------------------------------------------
    def load(name):
        if name == "mbf":
            from occface.models import import_onnx
            return import_onnx(args.onnx), {"source": args.onnx, "loader":
                                            "occface.models.import_onnx", "flip_test": False}
        from occface.models.io import load_embedding_model
        path = args.finetuned if name == "ft" else args.lcd
        return load_embedding_model(path), {"source": path, "loader": "occface.models.io."
                                            "load_embedding_model",
                                            "flip_test": "inside the export's embed graph"}

    folds = probe_folds(q, args.n_folds)
    rows, per_probe, recognizer_info = {}, {}, {}
    for rec in recognizers:
        t0 = time.monotonic()
        model, recognizer_info[rec] = load(rec)
        g_feats = embed_images(model, gallery, args.batch_size)
        rows[rec] = {}
        for fill in fills:
            t1 = time.monotonic()
            p_feats = embed_images(model, filled[fill], args.batch_size)
            res = evaluate_rmfrd_features(p_feats, g_feats, rmfrd, args.seed, RMFRD_FARS,
                                          args.n_folds)
            correct = rank1_identification(l2_normalize(p_feats), rmfrd.probe_labels,
                                           l2_normalize(g_feats), rmfrd.gallery_labels)["correct"]
            row = {k: res[k] for k in KEEP}
            row["fold_rank1"] = per_fold(correct, folds, args.n_folds)
            row["accuracy_ci95"] = mean_ci(row["fold_accuracies"])[1]
            row["seconds"] = round(time.monotonic() - t1, 1)
            rows[rec][fill] = row
            per_probe[(rec, fill)] = correct
            print(f"{rec:<4} {fill:<7} bal. acc {100 * row['accuracy']:6.2f} ± "
                  f"{100 * row['std']:4.2f}  TAR@1e-2 {100 * row['tar_at_far']['0.01']:6.2f}  "
                  f"rank-1 {100 * row['rank1']:6.2f}  ({row['seconds']:.0f} s)", flush=True)
        timings[f"recognizer_{rec}"] = round(time.monotonic() - t0, 1)
        del model

    # -- paired comparisons with direct, per recognizer ---------------------------------------
    verdicts = {}
    for rec in recognizers:
        base = rows[rec]["direct"]
        verdicts[rec] = {}
        for fill in fills[1:]:
            row = rows[rec][fill]
            acc = paired_verdict(row["fold_accuracies"], base["fold_accuracies"])
            r1 = paired_verdict(row["fold_rank1"], base["fold_rank1"])
            a, b = per_probe[(rec, fill)], per_probe[(rec, "direct")]
            verdicts[rec][fill] = {
                "balanced_accuracy": {**acc, "difference": row["accuracy"] - base["accuracy"]},
                "rank1": {**r1, "difference": row["rank1"] - base["rank1"],
                          "probes_fixed": int((a & ~b).sum()),
                          "probes_broken": int((~a & b).sum())},
                "tar_at_far_1e-2_difference": row["tar_at_far"]["0.01"]
                                              - base["tar_at_far"]["0.01"],
                "beats_direct": acc["verdict"] == "a > b" and r1["verdict"] == "a > b",
                "worse_than_direct": acc["verdict"] == "a < b" or r1["verdict"] == "a < b"}
        better = [f for f in fills[1:] if verdicts[rec][f]["beats_direct"]]
        partly = [f"{f} ({_figures(verdicts[rec][f], 'a > b')})" for f in fills[1:]
                  if _figures(verdicts[rec][f], "a > b") and f not in better]
        worse = [f"{f} ({_figures(verdicts[rec][f], 'a < b')})" for f in fills[1:]
                 if verdicts[rec][f]["worse_than_direct"]]
        verdicts[rec]["summary"] = (
            (f"{', '.join(better)} beat(s) direct on both balanced accuracy and rank-1"
             if better else "no fill beats direct embedding on RMFRD (balanced accuracy and "
                            f"rank-1, paired over the {args.n_folds} probe folds, 5 %)")
            + (f"; significantly better than direct on one figure only: {', '.join(partly)}"
               if partly else "")
            + (f"; significantly worse than direct: {', '.join(worse)}" if worse else ""))

    # -- table ----------------------------------------------------------------------------------
    names = {"mbf": "insightface MBF (w600k_mbf, imported)", "ft": "arcface_mbf_occ_ft (shipped)",
             "lcd": "lcd_ir18_w16_lfw (cascade's recognizer)"}
    lines = ["| recognizer | probe fill | balanced acc. (%) | Δ vs direct (pts, 95 % CI) | "
             "TAR@FAR=1e-2 (%) | rank-1 (%) | Δ vs direct (pts, 95 % CI) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for rec in recognizers:
        for fill in fills:
            row = rows[rec][fill]
            if fill == "direct":
                d_acc = d_r1 = "–"
            else:
                v = verdicts[rec][fill]
                d_acc, d_r1 = (f"{100 * v[key]['mean_diff']:+.2f} ± {100 * v[key]['ci95']:.2f}"
                               + _MARK[v[key]["verdict"]] for key in ("balanced_accuracy", "rank1"))
            lines.append(f"| {names[rec]} | {fill} | {100 * row['accuracy']:.2f} ± "
                         f"{100 * row['std']:.2f} | {d_acc} | {100 * row['tar_at_far']['0.01']:.2f}"
                         f" | {100 * row['rank1']:.2f} | {d_r1} |")
    table = "\n".join(lines)
    runtime = round(time.monotonic() - t_start, 1)
    notes = [
        f"RMFRD subset: {q} real masked probes x {len(gallery)} unmasked gallery faces of "
        f"{rmfrd.n_identities} people; balanced accuracy ± std over the {args.n_folds} probe "
        "folds (evaluate_rmfrd_features); Δ = mean paired per-fold difference fill − direct ± "
        "its 95 % CI (paired t over the folds, occface.evaluation.stats.paired_verdict).",
        f"Occlusion segmenter (shipped, as tools/verify.py uses it): any occluded pixel in "
        f"{100 * segmenter['probe_fraction_any_occlusion']:.1f} % of the probes; counted occluded"
        f" and therefore filled: {100 * segmenter['probe_fraction_occluded']:.1f} % "
        f"({segmenter['n_probes_occluded']}/{q}); mean estimated-mask area "
        f"{100 * segmenter['probe_mean_mask_area']:.1f} % of the 112x112 crop "
        f"({100 * segmenter['probe_mean_mask_area_occluded']:.1f} % over the filled probes); "
        f"unmasked gallery faces counted occluded: "
        f"{100 * segmenter['gallery_fraction_occluded']:.1f} % (not filled: gallery faces are "
        "always embedded directly).",
    ] + [f"{names[rec]}: {verdicts[rec]['summary']}." for rec in recognizers]
    print(table)
    print("\n".join(notes))
    print(f"runtime {runtime:.0f} s")

    settings = {**vars(args), "recognizers": recognizers, "fills": fills,
                "fars": list(RMFRD_FARS), "protocol": "rmfrd (occface.evaluation.rmfrd): "
                "YuNet score 0.6, pad 0, ArcFace 112 template, crop fallback "
                f"{args.fallback!r}; masked probes filled before embedding, gallery direct",
                "fill_rule": "occface.occlusion_estimate.fill_estimated_occlusion: the shipped "
                             "segmenter's binary mask (p > 0.5); only faces describe_mask counts "
                             "occluded (>= threshold of the face region) are filled, inside the "
                             "mask (tools/verify.py's rule for handing a mask to a cascade)",
                "evaluation_only": "RMFRD tuned nothing: segmenter, threshold, fills and "
                                   "recognizers are used as shipped"}
    meta = run_metadata(settings)
    meta.update({"licence": LICENCE, "recognizers": recognizer_info, "generator": generator_info,
                 "segmenter": segmenter,
                 "faces": {"n_probes": q, "n_gallery": int(len(gallery)),
                           "n_fallback_probes": int((~found[:q]).sum()),
                           "n_fallback_gallery": int((~found[q:]).sum())},
                 "results": rows, "comparisons_vs_direct": verdicts,
                 "verdict": {rec: verdicts[rec]["summary"] for rec in recognizers},
                 "table_markdown": table, "notes": notes, "timings_s": timings,
                 "runtime_s": runtime})
    write_json(args.output, meta)
    md = pathlib.Path(args.output).with_suffix(".md")
    md.write_text("# Cascade on real masks (RMFRD)\n\nCommand: `OCCFACE_DATA=/work/shared/data "
                  "python benchmarks/cascade_rmfrd.py " + " ".join(sys.argv[1:]) + "`\n\n"
                  + table + "\n\n" + "\n".join(f"* {n}" for n in notes)
                  + f"\n\n{LICENCE}\n\nRuntime {runtime:.0f} s on {os.cpu_count()} shared CPU "
                  f"cores. Every figure: `{pathlib.Path(args.output).name}`.\n")
    print(f"wrote {args.output} and {md}")


if __name__ == "__main__":
    main()
