"""How well does the occlusion segmenter find hidden face parts?

1. Real occlusion: RMFRD masked faces (should be flagged, kind "lower") vs unmasked faces of the
   same people (should not be flagged).
2. Synthetic occlusion on unseen people (LFW folds 8-10): mask IoU and detection rate per kind,
   and the false-alarm rate on clean faces.

    python benchmarks/occlusion_estimate.py [--model occface/assets/occlusion_segmenter/segmenter.keras]

Prints a table and writes benchmarks/results/occlusion_estimate.json.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from occface.data import (FaceDetector, KINDS, load_aligned_face, occlude,  # noqa: E402
                          read_lfw_pairs, template_landmarks)
from occface.occlusion_estimate import DEFAULT_WEIGHTS, OcclusionEstimator, describe_mask  # noqa
from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "occlusion_estimate.json"


def _aligned(paths, detector):
    faces, found = [], 0
    for p in paths:
        face, _, ok = load_aligned_face(p, 112, detector=detector)
        faces.append(face)
        found += ok
    return np.stack(faces), found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--per_set", type=int, default=300, help="faces per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    root = data_root()
    est = OcclusionEstimator(args.model)
    det = FaceDetector()
    rows = {}

    # 1. real masks
    rm = root / "rmfrd_subset"
    masked = sorted((rm / "AFDB_masked_face_dataset").rglob("*.jpg"))
    unmasked = sorted((rm / "AFDB_face_dataset").rglob("*.jpg"))
    unmasked = [unmasked[i] for i in sorted(rng.choice(len(unmasked), min(args.per_set,
                                                                          len(unmasked)), False))]
    for name, paths, want in (("rmfrd_masked", masked, True), ("rmfrd_unmasked", unmasked, False)):
        faces, found = _aligned(paths, det)
        verdicts = [describe_mask(m, est.threshold) for m in est.masks(faces)]
        flagged = np.array([v["occluded"] for v in verdicts])
        lower = np.array([v["kind"] == "lower" for v in verdicts])
        rows[name] = {"images": len(paths), "face_found": found,
                      "flagged_occluded": float(flagged.mean()),
                      "flagged_lower": float(lower.mean()),
                      "correct": float(flagged.mean() if want else 1 - flagged.mean()),
                      "mean_fraction": float(np.mean([v["fraction"] for v in verdicts]))}

    # 2. synthetic occlusions on unseen LFW people (folds 8-10)
    lfw = root / "lfw"
    test_ids = sorted(set().union(*read_lfw_pairs(lfw / "pairs.txt").fold_identities()[7:]))
    files = [f for n in test_ids for f in sorted((lfw / "lfw-deepfunneled" / n).glob("*.jpg"))]
    files = [files[i] for i in sorted(rng.choice(len(files), args.per_set, replace=False))]
    clean, _ = _aligned(files, det)
    lm = template_landmarks(112)
    clean_verdicts = [describe_mask(m, est.threshold) for m in est.masks(clean)]
    rows["lfw_clean"] = {"images": len(files),
                         "flagged_occluded": float(np.mean([v["occluded"] for v in
                                                            clean_verdicts])),
                         "correct": float(1 - np.mean([v["occluded"] for v in clean_verdicts]))}
    for kind in KINDS:
        occluded, truth = zip(*[occlude(f, lm, kind, rng) for f in clean])
        pred = est.masks(np.stack(occluded)).astype(bool)
        truth = np.stack(truth).astype(bool)
        inter = (pred & truth).sum(axis=(1, 2))
        union = (pred | truth).sum(axis=(1, 2))
        flagged = [describe_mask(p, est.threshold)["occluded"] for p in pred]
        rows[f"lfw_{kind}"] = {"images": len(files), "mask_iou": float(np.mean(inter /
                                                                               np.maximum(union, 1))),
                               "flagged_occluded": float(np.mean(flagged)),
                               "correct": float(np.mean(flagged))}

    print(f"{'set':<18} {'images':>6} {'flagged':>8} {'correct':>8} {'mask IoU':>9}")
    for name, row in rows.items():
        iou = f"{row['mask_iou']:.3f}" if "mask_iou" in row else "-"
        print(f"{name:<18} {row['images']:>6} {row['flagged_occluded']:>8.3f} "
              f"{row['correct']:>8.3f} {iou:>9}")
    write_json(RESULTS, {**run_metadata(vars(args)), "rows": rows})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
