"""Should the occlusion-aware cascade inpaint an occluded face before embedding it?

Measures, per occlusion kind, verification accuracy on occluded LFW pairs of people unseen by both
the recognizer and the generator (pairs.txt folds 8-10 by default) when the occluded face is

* ``direct``: embedded as it is (the LCD recognizer's own robustness), or
* ``inpainted``: first completed by the ID-GAN generator through the very graph function the
  SavedModel export serves (:func:`occface.serving.make_inpaint_fn`, 112-px faces, the generator
  wrapped by in-graph resizing when it was trained at another size),

plus the classical Telea / Navier-Stokes fills for reference. With ``--masks exact`` the mask
given to the inpainters is the synthetic occluder's own mask (what the export's ``masks_*`` inputs
expect from a caller that knows it); with ``--masks estimated`` it is the shipped occlusion
segmenter's mask of the occluded face (what ``tools/verify.py`` sends), so the whole serving path
is measured. The output is the evidence file ``tools/export.py --kind cascade
--cascade_evidence`` reads::

    python benchmarks/cascade_evidence.py --generator runs/idgan64_wid \\
        --recognizer saved_models/lcd_ir18_w16_lfw --aligned_dir runs/lfw112

Prints a table and writes benchmarks/results/cascade_evidence.json.
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

from occface.cli import parse_int_ranges  # noqa: E402
from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cascade_evidence.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, help="generator.keras or ID-GAN model_dir")
    parser.add_argument("--recognizer", default=str(ROOT / "saved_models" / "lcd_ir18_w16_lfw"),
                        help="recognizer (.keras, model_dir or SavedModel)")
    parser.add_argument("--aligned_dir", required=True, help="aligned LFW tree at 112 px "
                        "(tools/prepare_dataset.py --size 112)")
    parser.add_argument("--pairs", default=None, help="LFW pairs.txt (default: $OCCFACE_DATA/lfw)")
    parser.add_argument("--folds", default="7-9", help="0-based pairs.txt folds to evaluate")
    parser.add_argument("--kinds", default="block,mask,sunglasses")
    parser.add_argument("--size", type=int, default=112, help="face side (the export's 112)")
    parser.add_argument("--classical", default="telea,ns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masks", choices=["exact", "estimated"], default="exact",
                        help="inpaint with the occluder's own mask or the occlusion segmenter's")
    parser.add_argument("--output", default=None,
                        help=f"JSON path (default {RESULTS.name}, or cascade_evidence_estimated"
                             ".json with --masks estimated)")
    args = parser.parse_args()
    if args.output is None:
        args.output = str(RESULTS if args.masks == "exact"
                          else RESULTS.with_name("cascade_evidence_estimated.json"))

    from occface.evaluation import load_embedding_model
    from occface.evaluation.protocols import FaceSource, PairSet, lfw_pair_set
    from occface.inpainting.evaluate import (evaluate_inpainting_pairs, inpainting_methods,
                                             load_generator)

    pairs_file = pathlib.Path(args.pairs) if args.pairs else data_root() / "lfw" / "pairs.txt"
    if not pathlib.Path(args.aligned_dir).is_dir():
        sys.exit(f"cascade_evidence: error: --aligned_dir not found: {args.aligned_dir}")
    pairs = lfw_pair_set(pairs_file.parent, pairs_file.name, image_root=args.aligned_dir)
    folds = parse_int_ranges(args.folds)
    keep = np.flatnonzero(np.isin(pairs.folds, folds))
    pairs = PairSet([pairs.keys_a[i] for i in keep], [pairs.keys_b[i] for i in keep],
                    pairs.issame[keep], np.unique(pairs.folds[keep], return_inverse=True)[1],
                    name=pairs.name)
    generator = load_generator(args.generator)
    methods = inpainting_methods({"inpainted": generator},
                                 classical=[c for c in args.classical.split(",") if c])
    methods = {("direct" if k == "OCC" else k): v for k, v in methods.items()}
    if args.masks == "estimated":
        from occface.occlusion_estimate import default_occlusion_estimator
        estimator = default_occlusion_estimator()
        if estimator is None:
            sys.exit("cascade_evidence: error: the occlusion segmenter is not installed")

        last = {}  # every method gets the same batch in turn: segment it once

        def estimated_masks(images):
            if last.get("images") is not images:
                last.update(images=images, masks=estimator.masks(np.asarray(images)))
            return last["masks"]

        def with_estimated_mask(fn):
            return lambda images, masks: fn(images, estimated_masks(images))

        methods = {k: (v if k == "direct" else with_estimated_mask(v))
                   for k, v in methods.items()}
    recognizer = load_embedding_model(args.recognizer)
    source = FaceSource("aligned", size=args.size)

    table, details = {}, {}
    print(f"{len(pairs)} pairs (folds {folds}), faces {args.size} px, generator input "
          f"{generator.input_shape[0][1]} px")
    header = "| kind | " + " | ".join(methods) + " | gain from inpainting |"
    lines = [header, "|---|" + "---:|" * (len(methods) + 1)]
    for kind in [k for k in args.kinds.split(",") if k]:
        t0 = time.time()
        report = evaluate_inpainting_pairs(pairs, source, methods, recognizer=recognizer,
                                           kind=kind, seed=args.seed, occlude="one")
        row = {name: float(v["accuracy"]) for name, v in report["methods"].items()}
        table[kind] = row
        details[kind] = {"clean_accuracy": report["clean"]["accuracy"],
                         "methods": {name: {key: v[key] for key in ("accuracy", "std", "psnr",
                                                                    "ssim")}
                                     for name, v in report["methods"].items()},
                         "n_pairs": report["n_pairs"], "seconds": round(time.time() - t0, 1)}
        lines.append(f"| {kind} | " + " | ".join(f"{row[n]:.4f}" for n in methods)
                     + f" | {row['inpainted'] - row['direct']:+.4f} |")
        print(lines[-1], flush=True)
    from occface.serving.cascade import region_policy  # the rule tools/export.py applies
    policy, gains, _ = region_policy(table)
    print("\n".join(lines))
    print("cascade policy (inpaint first?) per occlusion region: "
          + ", ".join(f"{r}: {'yes' if v else 'no'}" for r, v in policy.items()))
    meta = run_metadata(vars(args))
    meta.update({"occluded_pair_accuracy": table, "details": details,
                 "mean_gain_from_inpainting": float(np.mean(list(gains.values()))),
                 "inpaint_policy": policy,
                 "masks": args.masks,
                 "protocol": "LFW pairs of the given folds, second face occluded (occlude='one'), "
                             "10-fold-style accuracy over the folds; clean faces embedded as is"})
    write_json(args.output, meta)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
