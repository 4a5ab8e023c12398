"""Inpaint occluded faces with ID-GAN generators and the classical baselines; side-by-side PNGs.

Two modes (the logic lives in :mod:`occface.inpainting.evaluate`):

Images
    ``--images`` (files or directories) are aligned faces (or raw photos with ``--align``). With
    ``--masks`` (one mask image per face, or a directory of masks named like the faces; non-zero
    = hole) they are inpainted as they are; otherwise a synthetic ``--occlusion`` (block = a
    0.375·S square, i.e. 48x48 on 128x128 faces; mask; sunglasses; ...) hides part of the clean
    face, which is kept as ground truth. Writes ``<output_dir>/<name>.png`` = input | each method
    | truth, and ``metrics.json`` (PSNR/SSIM per method when there is a ground truth).
Pairs benchmark
    ``--pairs`` (LFW ``pairs.txt``) + ``--pairs_folds`` (held-out folds, e.g. 7-9) +
    ``--aligned_dir`` (aligned LFW tree at the generator's size): occludes the second face of each
    pair, fills it with every method and reports PSNR/SSIM and, with ``--recognizer``, the
    verification accuracy (``results.json`` with the run's settings, ``results.md``, example
    strips).

Methods: ``OCC`` (unfilled), ``Telea``, ``NS`` (``--classical``) and every
``--generators=name=path``: a ``generator.keras``, an ID-GAN ``model_dir``, or an ``inpaint`` /
``cascade`` SavedModel export (``tools/export.py``; e.g. the shipped
``saved_models/idgan_wid_lfw64``), run through its ``inpaint`` signature on faces of the export's
aligned size (112; other ``--size`` faces are resized to it and back, known pixels kept).

JSON files are strict JSON: a non-finite number (the PSNR of a face identical to its ground
truth is infinite) is written as ``null`` (:func:`occface.utils.json_text`).

Examples::

    python tools/inpaint.py --generators=wID=runs/idgan_wid --images=faces/ --occlusion=block \\
        --output_dir=out/inpaint
    python tools/inpaint.py --generators=w/oID=runs/idgan_woid,wID=runs/idgan_wid \\
        --pairs=../shared/data/lfw/pairs.txt --pairs_folds=7-9 --aligned_dir=runs/lfw112 \\
        --size=64 --recognizer=runs/lcd_r18w16/model.keras --output_dir=benchmarks/results/idgan
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import flags, logging as absl_logging  # noqa: E402

from occface import choices, cli  # noqa: E402
from occface.data.folders import IMAGE_EXTENSIONS  # noqa: E402

FLAGS = flags.FLAGS
PROG = "inpaint"

flags.DEFINE_list("generators", [], "name=path of ID-GAN generators (generator.keras, a training "
                  "model_dir, or an inpaint/cascade SavedModel export such as "
                  "saved_models/idgan_wid_lfw64), e.g. wID=runs/idgan_wid; a bare path is named "
                  "'ID-GAN'.")
flags.DEFINE_list("classical", ["telea", "ns"], "Classical baselines (telea, ns); empty = none.")
flags.DEFINE_bool("occ", True, "Include the unfilled occluded face (OCC).")
flags.DEFINE_integer("size", 0, "Face side; 0 = the first generator's input size (an export's "
                     "aligned size, 112; 128 without generators).", lower_bound=0)
flags.DEFINE_string("output_dir", None, "Where the PNGs and metrics go.")
flags.DEFINE_integer("seed", 0, "Synthetic occlusion seed.")
flags.DEFINE_enum("occlusion", "block", list(choices.OCCLUSION_KINDS),
                  "Synthetic occlusion kind.")
# images mode
flags.DEFINE_list("images", [], "Face images or directories of them.")
flags.DEFINE_list("masks", [], "Mask images (one per face, same order) or one directory with masks "
                  "named like the faces; non-zero = hole.")
flags.DEFINE_bool("align", False, "Detect and align the faces (YuNet) instead of taking them as "
                  "aligned crops.")
# pairs mode
flags.DEFINE_string("pairs", "", "LFW pairs.txt: run the pairs benchmark instead of the images "
                    "mode.")
flags.DEFINE_string("pairs_folds", "", "0-based folds of --pairs to evaluate (e.g. 7-9); empty = "
                    "all.")
flags.DEFINE_string("aligned_dir", "", "Aligned face tree with LFW's layout (Name/Name_0001.*).")
flags.DEFINE_string("recognizer", "", "Recognizer for verification accuracy (.keras, model_dir, "
                    "SavedModel or 'dlib'); empty = PSNR/SSIM only.")
flags.DEFINE_enum("occlude", "one", ["one", "both"], "Pairs: occlude the second face (one) or "
                  "both faces.")
flags.DEFINE_bool("flip", False, "Pairs: flip-test embeddings.")
flags.DEFINE_integer("examples", 8, "Pairs: example strips written as PNGs.", lower_bound=0)
flags.DEFINE_integer("batch_size", 64, "Faces per batch.", lower_bound=1)


def _fail(message, code=1):
    cli.fail(PROG, message, code)


def _generator_specs():
    specs = {}
    for item in FLAGS.generators:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "ID-GAN", item
        if not os.path.exists(path):
            _fail(f"generator not found: {path}")
        specs[name.strip()] = path
    return specs


def _image_files():
    files = []
    for item in FLAGS.images:
        p = pathlib.Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.is_file():
            files.append(p)
        else:
            _fail(f"image not found: {item}")
    if not files:
        _fail("no images given (--images) or found")
    return files


def _mask_files(images):
    if not FLAGS.masks:
        return None
    if len(FLAGS.masks) == 1 and pathlib.Path(FLAGS.masks[0]).is_dir():
        root = pathlib.Path(FLAGS.masks[0])
        found = {q.stem: q for q in root.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS}
        missing = [p.name for p in images if p.stem not in found]
        if missing:
            _fail(f"no mask for {missing[0]} in {root}")
        return [found[p.stem] for p in images]
    masks = [pathlib.Path(m) for m in FLAGS.masks]
    for m in masks:
        if not m.is_file():
            _fail(f"mask not found: {m}")
    return masks


def _generator_method(path):
    """``(fn(images uint8, masks) -> uint8, face side)`` of a generator at ``path``.

    A ``.keras`` generator (or ID-GAN ``model_dir``) runs through
    :func:`occface.inpainting.evaluate.generator_inpaint_fn` at any side (its input size is the
    side); a SavedModel export through its ``inpaint`` signature, which takes faces of the
    export's ``aligned_size``: faces of another side are resized to it (area; a pixel is hole
    when any part of it is) and the filled faces back (bilinear), the known pixels kept exactly.
    """
    from occface.models.io import load_generator, resolve_model_path
    where = resolve_model_path(path, filename="generator.keras")
    if where.format == "keras":
        from occface.inpainting.evaluate import generator_inpaint_fn
        generator = load_generator(path)
        return generator_inpaint_fn(generator), int(generator.input_shape[0][1])
    import cv2
    import numpy as np
    import tensorflow as tf
    meta = where.metadata
    if "inpaint" not in meta.get("signatures", {}):
        raise ValueError(f"{where.path} is a SavedModel without an inpaint signature (kind "
                         f"{meta.get('kind', 'unknown')!r}); export one with tools/export.py "
                         "--kind inpaint")
    signature = tf.saved_model.load(str(where.path)).signatures["inpaint"]
    side = int(meta.get("aligned_size", 112))

    def resize(batch, size, interpolation):
        out = [cv2.resize(x, (size, size), interpolation=interpolation) for x in batch]
        return np.stack(out).reshape(len(batch), size, size, -1)

    def fn(images, masks):
        images = np.asarray(images, np.uint8)
        holes = (np.asarray(masks) > 0).astype(np.float32).reshape(images.shape[:3] + (1,))
        own = images.shape[1]
        x, m = images, holes
        if own != side:
            x = resize(images, side, cv2.INTER_AREA)
            m = (resize(holes, side, cv2.INTER_AREA) > 0).astype(np.float32)
        parts = [signature(images=tf.constant(x[i:i + FLAGS.batch_size]),
                           masks=tf.constant(m[i:i + FLAGS.batch_size]))["inpainted"].numpy()
                 for i in range(0, len(x), FLAGS.batch_size)]
        out = np.concatenate(parts) if parts else x.copy()
        if own != side:
            out = resize(out, own, cv2.INTER_LINEAR)
        return np.where(holes > 0, out, images).astype(np.uint8)
    return fn, side


def _write_png(path, rgb):
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {path}")


def _settings():
    return {name: FLAGS[name].value for name in (
        "generators", "classical", "occ", "size", "seed", "occlusion", "images", "masks", "align",
        "pairs", "pairs_folds", "aligned_dir", "recognizer", "occlude", "flip", "batch_size")}


def _images_mode(methods, size, out_dir):
    from occface.inpainting.face_files import face_strip, faces_report, inpaint_faces, prepare_faces
    from occface.utils import run_metadata, write_json
    images = _image_files()
    faces = prepare_faces(images, size, align=FLAGS.align, mask_paths=_mask_files(images),
                          occlusion=FLAGS.occlusion, seed=FLAGS.seed)
    for s in range(0, len(faces), FLAGS.batch_size):
        inpaint_faces(faces[s:s + FLAGS.batch_size], methods)
    names = set()
    for face in faces:
        name = face["name"]
        k = 1
        while name in names:
            k += 1
            name = f"{face['name']}_{k}"
        names.add(name)
        _write_png(out_dir / f"{name}.png", face_strip(face))
    report = faces_report(faces)
    meta = run_metadata(_settings())
    meta.update({"n_images": len(faces), "methods": list(methods), "metrics": report})
    write_json(out_dir / "metrics.json", meta)
    line = "; ".join(f"{k}: PSNR {v['psnr']:.2f} SSIM {v['ssim']:.4f}" for k, v in report.items())
    print(f"wrote {len(faces)} side-by-side PNGs to {out_dir}" + (f" ({line})" if line else ""))


def _pairs_mode(methods, size, out_dir):
    from occface.evaluation.protocols import FaceSource, lfw_pair_set
    from occface.inpainting.evaluate import evaluate_inpainting_pairs, format_inpainting_table
    from occface.utils import run_metadata, write_atomic, write_json
    pairs_file = pathlib.Path(FLAGS.pairs)  # it and --aligned_dir exist: _check
    pairs = lfw_pair_set(pairs_file.parent, pairs_file.name, image_root=FLAGS.aligned_dir)
    if FLAGS.pairs_folds:
        folds = cli.parse_int_ranges(FLAGS.pairs_folds)
        from occface.evaluation.protocols import PairSet
        import numpy as np
        keep = np.isin(pairs.folds, folds)
        if not keep.any():
            _fail(f"no pairs in folds {folds}")
        idx = np.flatnonzero(keep)
        pairs = PairSet([pairs.keys_a[i] for i in idx], [pairs.keys_b[i] for i in idx],
                        pairs.issame[idx], np.unique(pairs.folds[idx], return_inverse=True)[1],
                        name=pairs.name)
    missing = [k for k in pairs.unique_keys() if not os.path.isfile(k)]
    if missing:
        _fail(f"{len(missing)} pair images missing from --aligned_dir, e.g. {missing[0]}")
    recognizer = None
    if FLAGS.recognizer:
        from occface.models.io import load_embedding_model
        recognizer = load_embedding_model(FLAGS.recognizer)
    source = FaceSource("aligned", size=size)
    report = evaluate_inpainting_pairs(pairs, source, methods, recognizer=recognizer,
                                       kind=FLAGS.occlusion, seed=FLAGS.seed,
                                       occlude=FLAGS.occlude, flip=FLAGS.flip,
                                       batch_size=FLAGS.batch_size, examples=FLAGS.examples)
    for i, strip in enumerate(report.pop("examples", [])):
        _write_png(out_dir / "examples" / f"pair_{i:02d}.png", strip)
    meta = run_metadata(_settings())
    meta.update({"size": size, "methods": list(methods), "report": report})
    write_json(out_dir / "results.json", meta)
    table = format_inpainting_table(report)
    write_atomic(out_dir / "results.md", table + "\n")
    print(table)


def _check(argv):
    """Flag and path mistakes, before TensorFlow is imported."""
    del argv
    if not FLAGS.output_dir:
        _fail("--output_dir is required")
    if bool(FLAGS.pairs) == bool(FLAGS.images):
        _fail("give either --images (side-by-side PNGs) or --pairs (benchmark)")
    _generator_specs()
    if FLAGS.pairs:
        if not os.path.isfile(FLAGS.pairs):
            _fail(f"--pairs file not found: {FLAGS.pairs}")
        if not FLAGS.aligned_dir or not os.path.isdir(FLAGS.aligned_dir):
            _fail(f"--aligned_dir not found: {FLAGS.aligned_dir or '(empty)'}")
        try:
            cli.parse_int_ranges(FLAGS.pairs_folds)
        except ValueError:
            _fail(f"bad --pairs_folds: {FLAGS.pairs_folds}", code=cli.USAGE_ERROR)
        from occface.choices import is_dlib_spec
        if FLAGS.recognizer and not is_dlib_spec(FLAGS.recognizer) \
                and not os.path.exists(FLAGS.recognizer):
            _fail(f"--recognizer not found: {FLAGS.recognizer}")
    else:
        _mask_files(_image_files())


def main(argv):
    del argv
    specs = _generator_specs()
    absl_logging.set_verbosity(absl_logging.WARNING)
    from occface.inpainting.evaluate import inpainting_methods
    try:
        generators = {name: _generator_method(path) for name, path in specs.items()}
        size = FLAGS.size or (next(iter(generators.values()))[1] if generators else 128)
        methods = inpainting_methods({}, classical=FLAGS.classical, include_occ=FLAGS.occ)
        methods.update({name: fn for name, (fn, _) in generators.items()})
        if not methods:
            _fail("no method selected (--generators, --classical, --occ)")
        out_dir = pathlib.Path(FLAGS.output_dir)
        if FLAGS.pairs:
            _pairs_mode(methods, size, out_dir)
        else:
            _images_mode(methods, size, out_dir)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)


if __name__ == "__main__":
    cli.run(main, PROG, checks=_check)
