"""Verify two face photos, or rank a probe photo against a gallery of people.

    python tools/verify.py IMAGE_A IMAGE_B [--model saved_models/...] [--json]
    python tools/verify.py PROBE --gallery DIR [--top_k 5] [--json]

Detects the face (YuNet), aligns it, embeds it with the model (default: the shipped demo model),
and prints the verdict with the cosine similarity and the model's calibrated threshold.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from occface.cli import import_tensorflow_quietly  # noqa: E402
import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model", None, "SavedModel export (base path or version dir), .keras file or "
                    "training model_dir; default: the shipped demo model.")
flags.DEFINE_string("gallery", None, "Folder of people (one sub-folder per person, or loose "
                    "photos): rank the probe against it instead of verifying a pair.")
flags.DEFINE_integer("top_k", 5, "How many gallery identities to list.", lower_bound=1)
flags.DEFINE_float("threshold", None, "Override the model's stored decision threshold.")
flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
flags.DEFINE_bool("occlusion", True, "Estimate whether each face is occluded.")
FLAGS = flags.FLAGS


def _fail(message):
    print(f"verify: error: {message}", file=sys.stderr)
    return 2


def main(argv):
    images = argv[1:]
    if FLAGS.gallery is None and len(images) != 2:
        return _fail(f"expected two images (IMAGE_A IMAGE_B), got {len(images)}; "
                     "or one probe image with --gallery DIR")
    if FLAGS.gallery is not None and len(images) != 1:
        return _fail(f"--gallery takes exactly one probe image, got {len(images)}")

    from occface.data import NoFaceError
    from occface.verify import FaceVerifier, gallery_size

    try:
        estimator = None
        if FLAGS.occlusion:
            from occface.occlusion_estimate import default_occlusion_estimator
            estimator = default_occlusion_estimator()
        verifier = FaceVerifier(FLAGS.model, threshold=FLAGS.threshold,
                                occlusion_estimator=estimator)
        if FLAGS.gallery is None:
            result = verifier.compare(images[0], images[1])
        else:
            from occface.utils import ProgressBar
            bar = None if FLAGS.json else ProgressBar(gallery_size(FLAGS.gallery), "gallery",
                                                      unit="img")
            result = verifier.rank(images[0], FLAGS.gallery, top_k=FLAGS.top_k, progress=bar)
            if bar is not None:
                bar.close()
    except NoFaceError as err:
        return _fail(str(err))
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))

    if FLAGS.json:
        print(json.dumps(result, indent=2))
        return 0
    if FLAGS.gallery is None:
        for face in result["faces"]:
            print(face["description"])
        verdict = "SAME person" if result["same"] else "DIFFERENT people"
        print(f"{verdict}: similarity {result['score']:.3f} "
              f"(threshold {result['threshold']:.3f}, model {result['model']})")
    else:
        print(result["probe"]["description"])
        print(f"{'rank':>4}  {'identity':<32} {'score':>7}  match")
        for i, row in enumerate(result["ranking"], 1):
            print(f"{i:>4}  {row['identity']:<32} {row['score']:7.3f}  "
                  f"{'yes' if row['same'] else 'no'}")
        for skip in result["skipped"]:
            print(f"skipped {skip['path']}: {skip['reason']}")
    return 0


if __name__ == "__main__":
    app.run(main)
