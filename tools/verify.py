"""Verify two face photos, or rank a probe photo against a gallery of people.

    python tools/verify.py IMAGE_A IMAGE_B [--model saved_models/...] [--json]
    python tools/verify.py PROBE --gallery DIR [--top_k 5] [--json]

Detects the face (YuNet), aligns it, embeds it with the model, and prints the verdict with the
cosine similarity and the model's calibrated threshold.

Default model: saved_models/arcface_mbf_occ_ft, insightface's ArcFace MobileFaceNet fine-tuned
for occlusion. LICENCE: its weights derive from insightface's pretrained models and are for
NON-COMMERCIAL RESEARCH USE ONLY (saved_models/arcface_mbf_occ_ft/MODEL_CARD.md). The fully
occface-trained, unencumbered model: --model saved_models/lcd_ir18_w16_lfw.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import flags  # noqa: E402

from occface import cli  # noqa: E402
from occface.utils import json_text  # noqa: E402

PROG = "verify"

flags.DEFINE_string("model", None, "SavedModel export (base path or version dir), .keras file or "
                    "training model_dir; default: saved_models/arcface_mbf_occ_ft (weights "
                    "derived from insightface's: non-commercial research use only, see its "
                    "MODEL_CARD.md); unencumbered: saved_models/lcd_ir18_w16_lfw.")
flags.DEFINE_string("gallery", None, "Folder of people (one sub-folder per person, or loose "
                    "photos): rank the probe against it instead of verifying a pair.")
flags.DEFINE_integer("top_k", 5, "How many gallery identities to list.", lower_bound=1)
flags.DEFINE_float("threshold", None, "Override the model's stored decision threshold (a cosine "
                   "similarity, in [-1, 1]).", lower_bound=-1.0, upper_bound=1.0)
flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
flags.DEFINE_bool("occlusion", True, "Estimate whether each face is occluded.")
flags.DEFINE_string("explain", None, "Also draw the verdict into this PNG: detections, aligned "
                    "faces, occlusion masks, occlusion-sensitivity maps, inpainted faces.")
flags.DEFINE_string("explain_dir", None, "With --gallery: one such PNG per listed identity here.")
flags.DEFINE_integer("explain_grid", 8, "Cells per side of the sensitivity map.", lower_bound=1,
                     upper_bound=112)
FLAGS = flags.FLAGS


def _fail(message):
    cli.fail(PROG, message, code=cli.USAGE_ERROR)


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    images = argv[1:]
    if FLAGS.gallery is None and len(images) != 2:
        _fail(f"expected two images (IMAGE_A IMAGE_B), got {len(images)}; "
              "or one probe image with --gallery DIR")
    if FLAGS.gallery is not None and len(images) != 1:
        _fail(f"--gallery takes exactly one probe image, got {len(images)}")
    if FLAGS.explain and FLAGS.gallery is not None:
        _fail("--explain draws a pair; with --gallery use --explain_dir DIR")
    if FLAGS.explain_dir and FLAGS.gallery is None:
        _fail("--explain_dir is for --gallery; for a pair use --explain OUT.png")
    if FLAGS.explain and not FLAGS.explain.lower().endswith(".png"):
        _fail(f"--explain writes a PNG; give a .png path, got {FLAGS.explain}")
    for image in images:
        if os.path.isdir(image):
            hint = "" if FLAGS.gallery is not None else " (to rank against a folder: --gallery)"
            _fail(f"{image} is a directory, not an image file{hint}")
        if not os.path.isfile(image):
            _fail(f"image file not found: {image}")
    if FLAGS.gallery is not None and not os.path.isdir(FLAGS.gallery):
        _fail(f"--gallery is not a directory: {FLAGS.gallery}" if os.path.exists(FLAGS.gallery)
              else f"gallery folder not found: {FLAGS.gallery}")


def main(argv):
    images = argv[1:]
    from occface.data import NoFaceError
    from occface.verify import FaceVerifier, gallery_size

    try:
        estimator = None
        if FLAGS.occlusion:
            from occface.occlusion_estimate import default_occlusion_estimator
            estimator = default_occlusion_estimator()
        verifier = FaceVerifier(FLAGS.model, threshold=FLAGS.threshold,
                                occlusion_estimator=estimator)
        if FLAGS.gallery is None and FLAGS.explain:
            from occface.explain import explain_pair, render_explanation
            explanation = explain_pair(verifier, images[0], images[1], grid=FLAGS.explain_grid)
            result = explanation["result"]
            result["explain"] = render_explanation(explanation, FLAGS.explain)["path"]
        elif FLAGS.gallery is None:
            result = verifier.compare(images[0], images[1])
        else:
            from occface.utils import ProgressBar
            bar = None if FLAGS.json else ProgressBar(gallery_size(FLAGS.gallery), "gallery",
                                                      unit="img")
            result = verifier.rank(images[0], FLAGS.gallery, top_k=FLAGS.top_k, progress=bar)
            if bar is not None:
                bar.close()
            if FLAGS.explain_dir:
                from occface.explain import explain_ranking
                result["explain"] = explain_ranking(verifier, images[0], result,
                                                    FLAGS.explain_dir, grid=FLAGS.explain_grid)
    except (NoFaceError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
    except OSError as err:  # e.g. --explain into a folder that cannot be written
        _fail(f"cannot write the explanation: {err}")

    if FLAGS.json:
        print(json_text(result))
        return 0
    if FLAGS.gallery is None:
        for face in result["faces"]:
            print(face["description"])
        verdict = "SAME person" if result["same"] else "DIFFERENT people"
        print(f"{verdict}: similarity {result['score']:.3f} "
              f"(threshold {result['threshold']:.3f}, model {result['model']})")
        if result.get("licence"):
            print(f"model licence: {result['licence']}")
        if result.get("explain"):
            print(f"explanation: {result['explain']}")
    else:
        print(result["probe"]["description"])
        print(f"{'rank':>4}  {'identity':<32} {'score':>7}  match")
        for i, row in enumerate(result["ranking"], 1):
            print(f"{i:>4}  {row['identity']:<32} {row['score']:7.3f}  "
                  f"{'yes' if row['same'] else 'no'}")
        for skip in result["skipped"]:
            print(f"skipped {skip['path']}: {skip['reason']}")
        for path in result.get("explain", []):
            print(f"explanation: {path}")
    return 0


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check, positional=True)
