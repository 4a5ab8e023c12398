"""prepare_dataset: library behaviour (counts, resume, formats) and the absl tool."""
import csv
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from occface.data import (prepare_dataset, read_manifest, read_records, template_landmarks,
                          training_dataset)
from occface.paths import REPO_ROOT

PEOPLE = {"Aaron_Eckhart": 1, "Abel_Pacheco": 2}  # name -> number of real images used


@pytest.fixture
def raw_tree(data_root, tmp_path):
    """Real LFW images of 2 people + a no-face image + a corrupt file + a text file."""
    root = tmp_path / "raw"
    for name, count in PEOPLE.items():
        (root / name).mkdir(parents=True)
        for i in range(1, count + 1):
            shutil.copy(data_root / "lfw" / "lfw-deepfunneled" / name / f"{name}_{i:04d}.jpg",
                        root / name)
    rng = np.random.default_rng(0)
    (root / "Nobody").mkdir()
    cv2.imwrite(str(root / "Nobody" / "Nobody_0001.png"),
                (rng.uniform(0, 1, (120, 120, 3)) * 30 + 100).astype(np.uint8))
    (root / "Nobody" / "Nobody_0002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "Abel_Pacheco" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("top-level files are ignored")
    return root


def test_prepare_images_counts_and_outputs(raw_tree, tmp_path):
    out = tmp_path / "aligned"
    calls = []
    m = prepare_dataset(raw_tree, out, size=112, workers=1, progress=calls.append,
                        on_start=lambda todo, done: calls.append(("start", todo, done)))
    assert m["counts"] == {"total": 6, "ok": 3, "no_face": 1, "unreadable": 2, "written": 4,
                           "skipped": 0}
    assert calls[0] == ("start", 6, 0) and sum(calls[1:]) == 6
    assert m["classes"] == ["Aaron_Eckhart", "Abel_Pacheco", "Nobody"]
    assert m["no_face_files"] == [os.path.join("Nobody", "Nobody_0001.png")]
    assert any("notes.txt" in e for e in m["unreadable_files"])
    assert any("Nobody_0002.jpg" in e for e in m["unreadable_files"])
    img = cv2.imread(str(out / "Abel_Pacheco" / "Abel_Pacheco_0002.jpg"))
    assert img.shape == (112, 112, 3)
    assert (out / "Nobody" / "Nobody_0001.jpg").is_file()  # centre-crop fallback
    with open(out / "records.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for row in rows:
        lm = np.array([float(row[f"{a}{k}"]) for k in range(5) for a in "xy"]).reshape(5, 2)
        err = np.linalg.norm(lm - template_landmarks(112), axis=1).mean()
        assert err < (5.0 if row["found"] == "1" else 1e-3)
    records = read_records(out)
    label, found, lm = records[os.path.join("Abel_Pacheco", "Abel_Pacheco_0002.jpg")]
    assert (label, found, lm.shape) == (1, True, (5, 2))
    assert records[os.path.join("Nobody", "Nobody_0001.jpg")][1] is False
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["counts"] == m["counts"] and on_disk["settings"]["size"] == [112, 112]
    assert "git_commit" in on_disk
    # The aligned tree feeds the training pipeline (via records.csv).
    ds, nc = training_dataset(out, 4, 112, augment=False, repeat=False, drop_remainder=False)
    assert nc == 3 and sum(len(b[1]) for b in ds) == 4


def test_prepare_is_resumable(raw_tree, tmp_path):
    out = tmp_path / "aligned"
    first = prepare_dataset(raw_tree, out, size=64, workers=1, chunk_size=2)
    assert first["processed"] == 6
    again = prepare_dataset(raw_tree, out, size=64, workers=1, chunk_size=2)
    assert again["processed"] == 0 and again["counts"]["skipped"] == 6
    assert again["counts"]["ok"] == 3
    # Interrupted run: one chunk's part file missing -> only that chunk is redone.
    (out / ".occface_prepare" / "part-00001.json").unlink()
    (out / "Abel_Pacheco" / "Abel_Pacheco_0002.jpg").unlink()
    third = prepare_dataset(raw_tree, out, size=64, workers=1, chunk_size=2)
    assert third["processed"] == 2 and third["counts"]["skipped"] == 4
    assert (out / "Abel_Pacheco" / "Abel_Pacheco_0002.jpg").is_file()
    with pytest.raises(ValueError, match=r"different settings \['size'\]"):
        prepare_dataset(raw_tree, out, size=112, workers=1, chunk_size=2)
    shutil.copy(raw_tree / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg",
                raw_tree / "Aaron_Eckhart" / "Aaron_Eckhart_0009.jpg")
    with pytest.raises(ValueError, match="different input files"):
        prepare_dataset(raw_tree, out, size=64, workers=1, chunk_size=2)


def test_prepare_tfrecord_and_skip_no_face(raw_tree, tmp_path):
    out = tmp_path / "tfr"
    m = prepare_dataset(raw_tree, out, size=(112, 96), format="tfrecord", workers=1,
                        shard_size=2, no_face="skip")
    assert m["counts"]["written"] == 3 and m["num_images"] == 3
    assert sum(s["count"] for s in read_manifest(out)["shards"]) == 3
    ds, nc = training_dataset(out, 8, (112, 96), augment=False, repeat=False,
                              drop_remainder=False)
    images, labels = next(iter(ds))
    assert images.shape == (3, 112, 96, 3) and sorted(labels.numpy().tolist()) == [0, 1, 1]


def test_prepare_bad_arguments(raw_tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        prepare_dataset(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(ValueError, match="format"):
        prepare_dataset(raw_tree, tmp_path / "o", format="zip")
    with pytest.raises(ValueError, match="inside the input"):
        prepare_dataset(raw_tree, raw_tree / "out")


def _tool(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "prepare_dataset.py"),
                           *args], capture_output=True, text=True, env=env, timeout=300)


def test_tool_two_workers_and_errors(raw_tree, tmp_path):
    out = tmp_path / "tool_out"
    r = _tool(f"--input_dir={raw_tree}", f"--output={out}", "--size=48", "--workers=2",
              "--format=tfrecord", "--shard_size=2")
    assert r.returncode == 0, r.stderr
    assert "total 6, ok 3, no face 1, unreadable 2, skipped (already done) 0" in r.stdout
    assert "images/s" in r.stdout
    r = _tool(f"--input_dir={raw_tree}", f"--output={out}", "--size=48", "--workers=2",
              "--format=tfrecord", "--shard_size=2")
    assert r.returncode == 0 and "skipped (already done) 6" in r.stdout
    r = _tool(f"--input_dir={tmp_path / 'nope'}", f"--output={out}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "input directory not found" in r.stderr
    r = _tool(f"--input_dir={raw_tree}", f"--output={out}", "--size=4x4x4")
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["prepare_dataset: error: --size must be an integer or HxW, "
                                     "got '4x4x4'"]


@pytest.mark.parametrize("size", ["0", "-5", "112x0"])
def test_tool_refuses_a_size_that_is_not_positive(raw_tree, tmp_path, size):
    """Was exit 0 with every good image counted "unreadable"."""
    r = _tool(f"--input_dir={raw_tree}", f"--output={tmp_path / 'o'}", f"--size={size}")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"prepare_dataset: error: --size must be positive, got "
                                     f"'{size}'"]
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="size must be a positive side"):
        prepare_dataset(raw_tree, tmp_path / "o", size=int(size.split("x")[-1]))
