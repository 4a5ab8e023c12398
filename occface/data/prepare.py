"""Detect and align a raw identity-per-folder face dataset into aligned images or TFRecord shards.

The logic behind ``tools/prepare_dataset.py``. Work is split into chunks (one TFRecord shard, or a
few hundred images, each) processed by worker processes; every finished chunk leaves a small JSON
"part" file under ``<output>/.occface_prepare/``, so a re-run skips finished chunks (resumable).
When all chunks are done, ``<output>/manifest.json`` is written with the counts:

- ``total``: image files found in the input tree;
- ``ok``: a face was detected and aligned;
- ``no_face``: no face detected (written as a centre crop with ``no_face="center"``, dropped with
  ``no_face="skip"``);
- ``unreadable``: not an image OpenCV can decode (corrupt, truncated, other file types);
- ``written``: images in the output;
- ``skipped``: images of chunks already finished by an earlier run (not processed again).
"""

import hashlib
import json
import logging
import multiprocessing
import os
import pathlib
import time

import cv2
import numpy as np

from occface.data.folders import identity_folders
from occface.utils import run_metadata, write_json

log = logging.getLogger(__name__)

STATE_DIR = ".occface_prepare"
MANIFEST = "manifest.json"
RECORDS_CSV = "records.csv"


def list_identity_tree(input_dir):
    """List an identity-per-folder tree.

    Every sub-directory of ``input_dir`` is one identity (its name is the identity name); all
    non-hidden files below it (recursively) are its images. Files directly in ``input_dir`` are
    ignored (e.g. a README).

    Returns
    -------
    classes : list of str
        Sorted identity names (identities without files are left out).
    items : list of (int, str)
        ``(label, path relative to input_dir)``, sorted by identity then path.
    """
    input_dir = pathlib.Path(input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input directory not found: {input_dir}")
    classes, items = [], []
    for label, (identity, files) in enumerate(identity_folders(input_dir)):
        classes.append(identity)
        items.extend((label, os.path.relpath(f, input_dir)) for f in files)
    if not items:
        raise ValueError(f"no identity folders with files in {input_dir} (expected "
                         f"<input_dir>/<identity>/<image>)")
    return classes, items


def _output_names(items, image_format):
    """Output file name (relative) for every item; disambiguates ``a.jpg`` / ``a.png`` clashes."""
    names, seen = [], set()
    for _, rel in items:
        stem, ext = os.path.splitext(rel)
        name = f"{stem}.{image_format}"
        if name in seen:
            name = f"{stem}_{ext.lstrip('.')}.{image_format}"
        seen.add(name)
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# worker side

_WORKER = {}


def _init_worker(settings, counter):
    cv2.setNumThreads(1)
    from occface.data.detection import FaceDetector
    _WORKER["detector"] = FaceDetector(score_threshold=settings["score_threshold"])
    _WORKER["counter"] = counter


def _encode(bgr, image_format, quality):
    if image_format == "png":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise RuntimeError("image encoding failed")
    return buf.tobytes()


def _process_chunk(task):
    """Process one chunk in a worker; returns its part record (also saved as JSON)."""
    from occface.data.alignment import detect_and_align, read_image
    chunk_id, entries, settings, classes = task
    input_dir = pathlib.Path(settings["input_dir"])
    output = pathlib.Path(settings["output"])
    size = settings["size"]
    records, examples = [], []
    counter = _WORKER.get("counter")
    for label, rel, out_name in entries:
        rec = {"source": rel, "label": label}
        try:
            bgr = read_image(input_dir / rel)
        except (ValueError, OSError) as e:
            rec.update(status="unreadable", error=str(e))
            records.append(rec)
            _tick(counter)
            continue
        try:
            aligned, landmarks, found = detect_and_align(
                bgr, size, _WORKER["detector"], fallback="center", pick=settings["pick"],
                name=str(input_dir / rel), center_fraction=settings["center_fraction"])
        except (ValueError, cv2.error) as e:
            rec.update(status="unreadable", error=f"{input_dir / rel}: {e}")
            records.append(rec)
            _tick(counter)
            continue
        rec["status"] = "ok" if found else "no_face"
        rec["landmarks"] = np.round(landmarks, 3).reshape(-1).tolist()
        if found or settings["no_face"] == "center":
            data = _encode(aligned, settings["image_format"], settings["quality"])
            if settings["format"] == "images":
                path = output / out_name
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                rec["file"] = out_name
            else:
                from occface.data.tfrecord import make_example
                examples.append(make_example(data, label, classes[label], landmarks, found, rel))
                rec["file"] = None
        records.append(rec)
        _tick(counter)
    part = {"chunk": chunk_id, "records": records}
    if settings["format"] == "tfrecord":
        from occface.data.tfrecord import write_shard
        name = f"shard-{chunk_id:05d}.tfrecord"
        part["shard"] = {"file": name, "count": write_shard(output / name, examples)}
    write_json(output / STATE_DIR / f"part-{chunk_id:05d}.json", part)
    return part


def _tick(counter):
    if counter is not None:
        with counter.get_lock():
            counter.value += 1


# ---------------------------------------------------------------------------------------------
# main side

def prepare_dataset(input_dir, output, size=112, format="images", workers=2, shard_size=1000,
                    chunk_size=250, image_format="jpg", quality=95, no_face="center",
                    score_threshold=0.6, pick="central", center_fraction=0.6, progress=None,
                    on_start=None):
    """Detect and align every image of an identity-per-folder tree (resumable, multi-process).

    Parameters
    ----------
    input_dir : str or path
        ``<input_dir>/<identity>/<image files>`` (e.g. ``lfw/lfw-deepfunneled``).
    output : str or path
        Output directory. ``format="images"``: ``<output>/<identity>/<stem>.<image_format>``
        (same relative layout as the input) + ``records.csv``; ``format="tfrecord"``:
        ``<output>/shard-NNNNN.tfrecord``. Both get ``manifest.json``.
    size : int or (int, int)
        Output side (112 recognizer, 128 inpainting) or ``(height, width)``.
    workers : int
        Worker processes (1: run in this process).
    shard_size, chunk_size : int
        Images per TFRecord shard / per work chunk of the image format.
    image_format : {"jpg", "png"}
    no_face : {"center", "skip"}
        Write a centre crop for images without a detected face, or leave them out.
    progress : callable, optional
        Called as ``progress(n)`` with the number of images processed since the last call.
    on_start : callable, optional
        Called once as ``on_start(images_to_process, images_already_done)`` before work starts.

    Returns
    -------
    dict
        The manifest (counts, classes, settings, timing: ``seconds``, ``images_per_second``).

    Raises
    ------
    FileNotFoundError
        ``input_dir`` missing.
    ValueError
        Bad options, an empty tree, or an ``output`` prepared earlier with other settings/input.
    """
    if format not in ("images", "tfrecord"):
        raise ValueError(f"format must be 'images' or 'tfrecord', got {format!r}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if no_face not in ("center", "skip"):
        raise ValueError(f"no_face must be 'center' or 'skip', got {no_face!r}")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    input_dir = pathlib.Path(input_dir).resolve()
    output = pathlib.Path(output).resolve()
    if output == input_dir or input_dir in output.parents:
        raise ValueError(f"output {output} must not be inside the input directory {input_dir}")
    size_hw = list(size) if isinstance(size, (tuple, list)) else [int(size), int(size)]
    if len(size_hw) != 2 or min(size_hw) < 1:
        raise ValueError(f"size must be a positive side or (height, width), got {size!r}")
    classes, items = list_identity_tree(input_dir)
    names = _output_names(items, image_format)
    per_chunk = shard_size if format == "tfrecord" else chunk_size
    chunks = [[(label, rel, name) for (label, rel), name in
               zip(items[i:i + per_chunk], names[i:i + per_chunk])]
              for i in range(0, len(items), per_chunk)]
    settings = {"input_dir": str(input_dir), "output": str(output), "size": size_hw,
                "format": format, "image_format": image_format, "quality": int(quality),
                "no_face": no_face, "score_threshold": float(score_threshold), "pick": pick,
                "center_fraction": float(center_fraction), "chunk_images": per_chunk}
    listing = hashlib.sha1("\n".join(f"{l}\t{r}" for l, r in items).encode()).hexdigest()
    plan = {"settings": settings, "listing_sha1": listing, "num_chunks": len(chunks),
            "num_images": len(items)}
    state = output / STATE_DIR
    plan_path = state / "plan.json"
    if plan_path.is_file():
        old = json.loads(plan_path.read_text())
        if old != plan:
            diff = sorted(k for k in settings if old.get("settings", {}).get(k) != settings[k])
            what = f"settings {diff}" if diff else "input files"
            raise ValueError(f"{output} was prepared earlier with different {what}; use another "
                             f"--output or delete it")
    else:
        output.mkdir(parents=True, exist_ok=True)
        write_json(plan_path, plan)
    done = {int(p.stem.split("-")[1]) for p in state.glob("part-*.json")}
    todo = [i for i in range(len(chunks)) if i not in done]
    skipped = sum(len(chunks[i]) for i in done)
    worker_settings = dict(settings, size=tuple(size_hw))
    tasks = [(i, chunks[i], worker_settings, classes) for i in todo]
    if on_start:
        on_start(len(items) - skipped, skipped)
    start = time.monotonic()
    processed = 0
    if tasks:
        if workers == 1 or len(tasks) == 1:
            _init_worker(worker_settings, None)
            for task in tasks:
                part = _process_chunk(task)
                processed += len(part["records"])
                if progress:
                    progress(len(part["records"]))
        else:
            processed = _run_pool(tasks, worker_settings, int(workers), progress)
    seconds = time.monotonic() - start
    manifest = _finalize(output, classes, chunks, settings, format)
    manifest["counts"]["skipped"] = skipped
    manifest["seconds"] = round(seconds, 3)
    manifest["processed"] = processed
    manifest["images_per_second"] = round(processed / seconds, 2) if seconds > 0 else None
    write_json(output / MANIFEST, manifest)
    return manifest


def _run_pool(tasks, settings, workers, progress):
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    reported = 0
    with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker,
                  initargs=(settings, counter)) as pool:
        results = pool.imap_unordered(_process_chunk, tasks)
        remaining = len(tasks)
        while remaining:
            try:
                results.next(timeout=0.5)
                remaining -= 1
            except multiprocessing.TimeoutError:
                pass
            value = counter.value
            if progress and value > reported:
                progress(value - reported)
            reported = value
    return counter.value


def _finalize(output, classes, chunks, settings, format):
    counts = {"total": sum(len(c) for c in chunks), "ok": 0, "no_face": 0, "unreadable": 0,
              "written": 0, "skipped": 0}
    problems = {"no_face": [], "unreadable": []}
    shards, rows = [], []
    for i in range(len(chunks)):
        part = json.loads((output / STATE_DIR / f"part-{i:05d}.json").read_text())
        for rec in part["records"]:
            counts[rec["status"]] += 1
            if rec["status"] != "ok":
                problems[rec["status"]].append(rec["source"] if rec["status"] == "no_face"
                                               else rec.get("error", rec["source"]))
            if rec["status"] != "unreadable" and (rec["status"] == "ok"
                                                  or settings["no_face"] == "center"):
                counts["written"] += 1
                if format == "images":
                    lm = ",".join(f"{v:.3f}" for v in rec["landmarks"])
                    rows.append(f"{rec['file']},{rec['label']},{int(rec['status'] == 'ok')},{lm}")
        if format == "tfrecord" and part["shard"]["count"]:
            shards.append(part["shard"])
    if format == "images":
        header = "file,label,found," + ",".join(f"{a}{k}" for k in range(5) for a in "xy")
        from occface.utils import write_atomic
        write_atomic(output / RECORDS_CSV, header + "\n" + "\n".join(rows) + ("\n" if rows else ""))
    manifest = run_metadata(settings)
    manifest.update({
        "format": "occface-tfrecord" if format == "tfrecord" else "occface-images",
        "version": 1, "image_size": settings["size"], "image_format": settings["image_format"],
        "classes": classes, "num_classes": len(classes), "num_images": counts["written"],
        "counts": counts, "no_face_files": problems["no_face"],
        "unreadable_files": problems["unreadable"]})
    if format == "tfrecord":
        manifest["shards"] = shards
    else:
        manifest["records"] = RECORDS_CSV
    return manifest


def read_records(output_dir):
    """The per-image records of an aligned image tree made by :func:`prepare_dataset`.

    Returns
    -------
    dict
        ``{relative file: (label int, found bool, landmarks float32 (5, 2))}``; the landmarks are
        the detected ones mapped into the aligned crop (template landmarks where no face was
        found), e.g. to place occluders with :func:`occface.data.occlude`.
    """
    import csv
    output_dir = pathlib.Path(output_dir)
    path = output_dir / RECORDS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"no {RECORDS_CSV} in {output_dir} (not an aligned image tree "
                                f"from tools/prepare_dataset.py --format images)")
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            lm = np.array([float(row[f"{a}{k}"]) for k in range(5) for a in "xy"],
                          np.float32).reshape(5, 2)
            out[row["file"]] = (int(row["label"]), row["found"] == "1", lm)
    return out
