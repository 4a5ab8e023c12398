"""tools/evaluate.py end to end on a tiny freshly built recognizer."""
import json
import subprocess
import sys

import numpy as np
import pytest

from occface.paths import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "evaluate.py"


def run_tool(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from occface.models import build_recognizer
    model = build_recognizer(depth=18, variant="baseline", input_shape=(32, 32, 3),
                             embedding_size=16, width=4, seed=0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def test_bin_end_to_end_with_json_and_plot(tiny_model, tmp_path, rng):
    from occface.data import write_verification_bin
    imgs = rng.integers(0, 256, (40, 112, 112, 3)).astype(np.uint8)
    write_verification_bin(tmp_path / "t.bin", imgs, np.arange(20) % 2 == 0)
    out, plot = tmp_path / "res.json", tmp_path / "roc.png"
    r = run_tool("--model", tiny_model, "--protocol", "bin", "--data_dir", tmp_path / "t.bin",
                 "--occlusion", "none,block", "--occlude", "one", "--flip", "--fars", "0.1,0.5",
                 "--output", out, "--plot", plot, "--batch_size", "16")
    assert r.returncode == 0, r.stderr
    assert "clean" in r.stdout and "block (one)" in r.stdout and "±" in r.stdout
    assert "TAR@1e-1" in r.stdout
    assert "embed" in r.stderr  # progress bar
    rep = json.loads(out.read_text())
    assert rep["settings"]["flip"] is True and rep["settings"]["occlusion"] == "none,block"
    assert rep["git_commit"] is None or len(rep["git_commit"]) >= 40
    clean, block = rep["report"]["conditions"]
    assert clean["n_pairs"] == 20 and len(clean["thresholds"]) == 10
    assert set(clean["tar_at_far"]) == {"0.1", "0.5"}
    assert 0 <= block["feature_robustness"] <= 4
    assert rep["report"]["model"]["input_size"] == [32, 32]
    assert plot.stat().st_size > 1000
    bars = tmp_path / "roc_accuracy.png"  # per-condition accuracy bars beside the ROC
    assert f"accuracy plot: {bars}" in r.stdout and bars.stat().st_size > 1000


def test_lfw_real_pairs_without_matplotlib(tiny_model, tmp_path, data_root):
    fake = tmp_path / "nompl" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    import os
    env = dict(os.environ, PYTHONPATH=str(fake.parent), OCCFACE_DATA=str(data_root))
    r = run_tool("--model", tiny_model, "--protocol", "lfw", "--max_pairs", "20",
                 "--occlusion", "none,mask", "--plot", tmp_path / "roc.png",
                 "--output", tmp_path / "r.json", "--cache_dir", tmp_path / "faces", env=env)
    assert r.returncode == 0, r.stderr
    assert "matplotlib is not installed: skipping --plot" in r.stderr
    assert not (tmp_path / "roc.png").exists()
    rep = json.loads((tmp_path / "r.json").read_text())["report"]
    assert rep["n_pairs"] == 20 and rep["faces"]["mode"] == "detect"
    assert 0 < rep["faces"]["loaded"] <= 40
    assert list((tmp_path / "faces").glob("faces_112_*.npz"))  # aligned faces cached on disk


@pytest.fixture
def placeholder_model(tmp_path):
    """A model path that exists (the checks below refuse the flags before it is read)."""
    path = tmp_path / "x.keras"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("args, message", [
    (["--model", "/nonexistent/model.keras"], "model not found: /nonexistent/model.keras"),
    (["--model", "MODEL", "--occlusion", "scarf"], "unknown occlusion 'scarf'; choose from "),
    (["--model", "MODEL", "--fars", "2"], "--fars values must lie in [0, 1], got '2'"),
    (["--model", "MODEL", "--batch_size", "0"], "flag --batch_size=0: 0 is not a positive integer"),
])
def test_user_mistakes_one_line_no_traceback(args, message, placeholder_model):
    r = run_tool(*[placeholder_model if a == "MODEL" else a for a in args])
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evaluate: error: {message}"), r.stderr


def test_missing_data_dir_is_one_line(tiny_model, tmp_path):
    r = run_tool("--model", tiny_model, "--protocol", "pairs", "--data_dir", tmp_path / "none.txt")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "evaluate: error: data not found" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--occlusion", "mask"], "evaluate: error: protocol 'rmfrd' has real masks, synthetic "
                              "occlusion does not apply: --occlusion must be 'none', got 'mask'"),
    (["--max_pairs", "100"], "evaluate: error: protocol 'rmfrd' always evaluates every pair: "
                             "--max_pairs is not supported"),
])
def test_rmfrd_bad_flag_combination_is_one_line(args, message, placeholder_model):
    # Rejected before the model is even read.
    r = run_tool("--model", placeholder_model, "--protocol", "rmfrd", *args)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [message], r.stderr


def test_rmfrd_end_to_end_on_a_mini_tree(tiny_model, tmp_path):
    import cv2
    root = tmp_path / "rmfrd"
    rows = ["path,identity,masked"]
    for k in range(14):  # 10 masked probes (one per fold), 2 unmasked images per person
        ident, masked = ("anna", "bert")[k % 2], int(k < 10)
        rel = f"{'AFDB_masked_face_dataset' if masked else 'AFDB_face_dataset'}/{ident}/{k}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), np.full((40, 40, 3), (15 * k, 100, 200 - 10 * k), np.uint8))
        rows.append(f"{rel},{ident},{masked}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    r = run_tool("--model", tiny_model, "--protocol", "rmfrd", "--data_dir", root, "--flip",
                 "--rmfrd_fallback", "center", "--output", out, "--noprogress")
    assert r.returncode == 0, r.stderr
    assert "balanced acc (%)" in r.stdout and "TAR@1e-2" in r.stdout and "TAR@1e-3" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["settings"]["protocol"] == "rmfrd" and rep["settings"]["rmfrd_fallback"] == "center"
    (cond,) = rep["report"]["conditions"]
    assert (cond["n_probes"], cond["n_gallery"], cond["n_genuine"], cond["n_impostor"]) == \
        (10, 4, 20, 20)
    assert cond["n_fallback"] == 14 and cond["fallback"] == "center" and cond["flip"] is True
    assert len(cond["fold_accuracies"]) == 10 and 0 <= cond["rank1"] <= 1


def test_rmfrd_fallback_has_no_landmarks_choice():
    # RMFRD is evaluation only: no fallback fitted on it (mean RMFRD landmarks) is offered.
    r = run_tool("--model", "/nonexistent/model.keras", "--protocol", "rmfrd",
                 "--rmfrd_fallback", "landmarks")
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["evaluate: error: flag --rmfrd_fallback=landmarks: value "
                                     "should be one of <resize|center>"]


def test_dlib_peer_on_real_pairs(tmp_path, data_root):
    """``--model dlib``: dlib's ResNet through the same protocol (20 real LFW pairs)."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    import os
    env = dict(os.environ, OCCFACE_DATA=str(data_root))
    r = run_tool("--model", "dlib", "--protocol", "lfw", "--max_pairs", "20",
                 "--output", tmp_path / "r.json", env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())["report"]
    assert rep["model"]["kind"] == "dlib" and rep["model"]["embedding_size"] == 128
    # a wrong warp (or no alignment) costs dlib far more than 2 of 20 pairs
    assert rep["n_pairs"] == 20 and rep["conditions"][0]["accuracy"] >= 0.9


def test_dlib_missing_model_file_is_one_line():
    r = run_tool("--model", "dlib:/nonexistent/model.dat")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == ("evaluate: error: dlib model file not found: "
                                                 "/nonexistent/model.dat")
