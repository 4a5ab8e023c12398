"""tools/train_recognizer.py: flags, flagfiles, one-line errors, a tiny real run with resume."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "train_recognizer.py"


def _run(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def _one_line_error(proc, pattern):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("train_recognizer: error: ")
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("args, pattern", [
    (["--depth=abc"], "--depth=abc: value should be one of <18|34|50|100>"),
    (["--strategy=tpu"], "value should be one of <default|mirrored|multi_worker>"),
    (["--batch_size=0"], "--batch_size=0"),
    (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["--flagfile=/nonexistent/x.cfg"], "Unable to open flagfile"),
    (["positional"], "unexpected arguments: positional"),
    (["--data_dir=/tmp"], "--model_dir is required"),
    (["--model_dir=/tmp/m"], "--data_dir is required"),
    (["--model_dir=/tmp/m", "--data_dir=/nonexistent/faces"], "training data not found"),
    (["--model_dir=/tmp/m", "--data_dir=/tmp", "--lfw_pairs=/nonexistent/pairs.txt"],
     "--lfw_pairs file not found"),
    (["--model_dir=/tmp/m", "--data_dir=/tmp", "--xla", "--strategy=mirrored"],
     "--xla works on a single device only"),
])
def test_bad_flags_give_one_line_errors(args, pattern):
    _one_line_error(_run(*args), pattern)


@pytest.mark.parametrize("name, expect", [
    ("cpu_lfw_r18w16_64.cfg", {"depth": 18, "width": 16, "input_size": 64, "variant": "lcd",
                               "train_folds": "0-5", "val_folds": "6", "include_unpaired": True,
                               "min_images_per_identity": 3, "strategy": "default"}),
    ("paper_r50_ms1m_4gpu.cfg", {"depth": 50, "width": 64, "input_size": 112,
                                 "batch_size": 512, "strategy": "mirrored",
                                 "lr_boundaries": ["100000", "160000"], "steps": 180000,
                                 "arcface_margin": 0.5, "arcface_scale": 64.0,
                                 "sr_filter_weight": 100.0, "sr_response_weight": 1.0}),
])
def test_flagfiles_resolve(name, expect):
    proc = _run(f"--flagfile=configs/{name}", "--print_config")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    for k, v in expect.items():
        assert cfg[k] == v, k
    # Flags after the flagfile override it.
    proc = _run(f"--flagfile=configs/{name}", "--steps=7", "--print_config")
    assert json.loads(proc.stdout)["steps"] == 7


def _face_tree(root, identities=4, per_identity=4, corrupt=2):
    import cv2
    rng = np.random.default_rng(0)
    for i in range(identities):
        d = root / f"person_{i}"
        d.mkdir(parents=True)
        base = rng.uniform(0, 255, (24, 24, 3))
        for j in range(per_identity):
            img = np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"person_{i}_{j + 1:04d}.png"), img)
    for j in range(corrupt):
        (root / "person_0" / f"broken_{j}.jpg").write_bytes(b"not an image at all")
    return root


COMMON = ["--variant=cd_sr", "--depth=18", "--width=4", "--input_size=16", "--embedding_size=8",
          "--batch_size=8", "--steps=4", "--checkpoint_interval=2", "--summary_interval=2",
          "--learning_rate=0.01", "--noprogress"]


def test_tiny_run_counts_corrupt_images_refuses_other_config_resumes_and_extends(tmp_path):
    data = _face_tree(tmp_path / "faces")
    model_dir = tmp_path / "run"
    proc = _run(f"--data_dir={data}", f"--model_dir={model_dir}", *COMMON)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("trained to step 4: loss=")
    assert (model_dir / "model.keras").is_file() and (model_dir / "config.json").is_file()
    record = json.loads((model_dir / "training.json").read_text())
    assert record["result"]["num_classes"] == 4
    assert record["result"]["resumed_at_step"] is None
    # The two undecodable files were skipped and counted.
    assert record["result"]["final"]["skipped_images_count"] >= 1
    # Another configuration in the same model_dir: refused with one line.
    other = _run(f"--data_dir={data}", f"--model_dir={model_dir}",
                 *[a if a != "--width=4" else "--width=8" for a in COMMON])
    _one_line_error(other, "different config")
    assert "width: stored 4 != now 8" in other.stderr
    # The same command again: the run is complete, one line, no TF checkpoint warnings, and the
    # finished run's record is left alone.
    again = _run(f"--data_dir={data}", f"--model_dir={model_dir}", *COMMON)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout == f"already trained to step 4; model: {model_dir / 'model.keras'}\n"
    assert again.stderr == ""
    assert json.loads((model_dir / "training.json").read_text()) == record
    # A larger --steps continues the run from step 4 to step 8 (not a config mismatch).
    longer = _run(f"--data_dir={data}", f"--model_dir={model_dir}", *COMMON, "--steps=8")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert longer.stdout.startswith("trained to step 8 (resumed at step 4): loss=")
    assert "resumed from " in longer.stderr and "at step 4; training to step 8" in longer.stderr
    extended = json.loads((model_dir / "training.json").read_text())["result"]
    assert (extended["step"], extended["resumed_at_step"], extended["steps_run"]) == (8, 4, 4)
    assert json.loads((model_dir / "config.json").read_text())["steps"] == 8
    assert (model_dir / "checkpoints" / "ckpt-8.index").is_file()


def test_empty_dataset_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _run(f"--data_dir={tmp_path / 'empty'}", f"--model_dir={tmp_path / 'run'}", *COMMON)
    _one_line_error(proc, "no images found")


def test_flags_are_the_config_fields_with_their_defaults():
    """One flag per RecognizerConfig field: --print_config without flags is the default config."""
    import dataclasses

    from occface.train.config import RecognizerConfig
    proc = _run("--print_config")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert list(cfg) == [f.name for f in dataclasses.fields(RecognizerConfig)]
    assert RecognizerConfig.from_dict(cfg) == RecognizerConfig()
