"""Where dlib's chip puts the ArcFace template, and which alignment the dlib peer should use.

``occface.models.dlib_peer`` feeds dlib's ResNet occface's ArcFace-aligned faces through one fixed
warp onto dlib's 150-px chip (:data:`~occface.models.dlib_peer.DLIB_CHIP_LANDMARKS`). This
benchmark

1. derives those chip points: on aligned faces of TRAINING identities only (LFW folds 0–5 and the
   people in no pair; every ``--stride``-th face), dlib's HOG detector and 5-point shape predictor
   on the face at 224 px give dlib's chip (``get_face_chip_details``, padding 0.25); the ArcFace
   template mapped into it, averaged — and compares them with the stored constant;
2. chooses the alignment on the VALIDATION fold (fold 6, 600 pairs): the fixed warp, dlib's own
   per-image chip (detector + shape predictor on each aligned face, a fixed box when nothing is
   detected), or a plain resize to 150 px. Accuracy at the best threshold of the 600 pairs
   (cosine and Euclidean). No test fold is read.

    python benchmarks/dlib_alignment.py --aligned_dir runs/lfw112

Writes ``benchmarks/results/dlib_alignment.json``. Needs ``pip install dlib-bin
face_recognition_models``.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from occface.paths import data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
BIG = 224  # side at which dlib's detector and shape predictor see a 112-px face


def _dlib():
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        sys.exit("dlib_alignment: needs dlib: pip install dlib-bin face_recognition_models")
    return dlib, frm


def _read(path):
    import cv2
    img = cv2.imread(str(path))
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _dlib_chip(dlib, detector, predictor, face):
    """dlib's own chip of an aligned face: ``(chip details or None, chip)``."""
    import cv2
    big = np.ascontiguousarray(cv2.resize(face, (BIG, BIG), interpolation=cv2.INTER_LINEAR))
    dets = detector(big, 0)
    box = dets[0] if len(dets) == 1 else dlib.rectangle(30, 40, BIG - 30, BIG - 14)
    shape = predictor(big, box)
    details = dlib.get_face_chip_details(shape, size=150, padding=0.25)
    return (details if len(dets) == 1 else None), dlib.get_face_chip(big, shape, size=150,
                                                                     padding=0.25)


def template_in_chip(details, template):
    """The ArcFace template (112-px coordinates) in the chip described by ``details``."""
    r = details.rect
    cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
    c, s = np.cos(-details.angle), np.sin(-details.angle)
    rel = template * (BIG / 112.0) - [cx, cy]
    rot = rel @ np.array([[c, s], [-s, c]])
    return (rot / [r.width(), r.height()] + 0.5) * details.cols


def derive(args, dlib, detector, predictor):
    from occface.data.alignment import ARCFACE_TEMPLATE_112
    from occface.data.lfw import lfw_training_identities
    from occface.models.dlib_peer import DLIB_CHIP_LANDMARKS
    people = lfw_training_identities(args.lfw_root, folds=range(6), include_unpaired=True)
    files = sorted(f for p in people for f in (pathlib.Path(args.aligned_dir) / p).glob("*.jpg"))
    files = files[::args.stride]
    pts = []
    for f in files:
        details, _ = _dlib_chip(dlib, detector, predictor, _read(f))
        if details is not None:
            pts.append(template_in_chip(details, ARCFACE_TEMPLATE_112))
    pts = np.array(pts)
    mean = pts.mean(0)
    return {"identities": "LFW folds 0-5 + unpaired (training identities)", "faces": len(files),
            "detected": len(pts), "mean": mean.tolist(), "std": pts.std(0).tolist(),
            "stored": DLIB_CHIP_LANDMARKS.tolist(),
            "max_abs_difference_px": float(np.abs(mean - DLIB_CHIP_LANDMARKS).max())}


def validate(args, dlib, detector, predictor, frm):
    import cv2
    from occface.evaluation import lfw_pair_set
    from occface.evaluation.heldout import subset_pairs
    from occface.evaluation.verification import best_threshold
    from occface.models.dlib_peer import dlib_chips
    pairs = subset_pairs(lfw_pair_set(args.lfw_root, image_root=args.aligned_dir), (6,))
    keys = pairs.unique_keys()
    faces = np.stack([_read(k) for k in keys])
    if faces.shape[1:3] != (112, 112):
        faces = np.stack([cv2.resize(f, (112, 112), interpolation=cv2.INTER_AREA) for f in faces])
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    index = {k: i for i, k in enumerate(keys)}
    a = np.array([index[k] for k in pairs.keys_a])
    b = np.array([index[k] for k in pairs.keys_b])
    chips = {
        "fixed ArcFace->dlib warp (dlib_peer)": lambda: dlib_chips(faces),
        "dlib per-image chip (detector + 5-point shape)": lambda: np.stack(
            [_dlib_chip(dlib, detector, predictor, f)[1] for f in faces]),
        "plain resize to 150 px": lambda: np.stack(
            [cv2.resize(f, (150, 150), interpolation=cv2.INTER_LINEAR) for f in faces]),
    }
    out = {}
    for name, make in chips.items():
        t0 = time.time()
        c = make()
        emb = np.asarray(net.compute_face_descriptor(list(c)), np.float32)
        ea, eb = emb[a], emb[b]
        cos = (ea * eb).sum(1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
        l2 = np.linalg.norm(ea - eb, axis=1)
        thr_c, acc_c = best_threshold(cos, pairs.issame)
        thr_l, acc_l = best_threshold(-l2, pairs.issame)
        out[name] = {"accuracy_cosine": acc_c, "threshold_cosine": thr_c,
                     "accuracy_euclidean": acc_l, "threshold_euclidean": -thr_l,
                     "mean_norm": float(np.linalg.norm(emb, axis=1).mean()),
                     "seconds": time.time() - t0}
        print(f"{name}: cosine {100 * acc_c:.2f} %, Euclidean {100 * acc_l:.2f} %", flush=True)
    return {"pairs": len(pairs.issame), "images": len(keys), "fold": 6, "alignments": out}


def main():
    root = data_root(required=False)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aligned_dir", default="runs/lfw112")
    p.add_argument("--lfw_root", default=str(root / "lfw") if root else None)
    p.add_argument("--stride", type=int, default=20, help="every N-th training face (derive)")
    p.add_argument("--output", default=str(RESULTS / "dlib_alignment.json"))
    args = p.parse_args()
    if not pathlib.Path(args.aligned_dir).is_dir():
        sys.exit(f"dlib_alignment: aligned LFW not found: --aligned_dir={args.aligned_dir}")
    dlib, frm = _dlib()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    t0 = time.time()
    derived = derive(args, dlib, detector, predictor)
    print(f"chip points from {derived['detected']} training faces: max |mean - stored| = "
          f"{derived['max_abs_difference_px']:.2f} px", flush=True)
    val = validate(args, dlib, detector, predictor, frm)
    write_json(args.output, dict(run_metadata(vars(args)), derived=derived, validation=val,
                                 seconds=time.time() - t0))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
