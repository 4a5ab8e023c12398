"""tools/export.py: calibration on real LFW pairs, self-check, refusal, cascade policy."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from occface.serving import cascade, publish, read_metadata
from occface.models import build_recognizer
from occface.paths import REPO_ROOT
from tests.by_hand import accuracy_at, best_accuracy, cosine, kfold_accuracy


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    model = build_recognizer(depth=18, variant="lcd", input_shape=(32, 32, 3), embedding_size=16,
                             width=8, seed=0)
    path = tmp_path_factory.mktemp("m") / "model.keras"
    model.save(path)
    return path


def test_calibrate_threshold_by_hand():
    scores = np.array([0.9, 0.8, 0.4, 0.3, 0.6, 0.1])
    issame = np.array([True, True, True, False, False, False])
    cal = publish.calibrate_threshold(scores, issame)
    # any threshold in (0.3, 0.4] or (0.6, 0.8] gets 5/6 right; none gets all 6
    assert cal["accuracy"] == pytest.approx(5 / 6)
    decide = scores >= cal["threshold"]
    assert np.mean(decide == issame) == pytest.approx(5 / 6)
    assert cal["far"] == pytest.approx(np.mean(decide[~issame]))
    assert cal["tar"] == pytest.approx(np.mean(decide[issame]))


def test_cascade_policy_from_evidence(tmp_path):
    path = tmp_path / "ev.json"
    path.write_text(json.dumps({"occluded_pair_accuracy": {
        "block": {"direct": 0.70, "inpainted": 0.74}, "mask": {"direct": 0.65, "inpainted": 0.64}}}))
    policy, evidence = cascade.cascade_policy(path)
    # block measures "other" (+0.04), mask measures "lower" (-0.01); "upper" was not measured
    # and follows the mean gain (+0.015)
    assert policy == {"upper": True, "lower": False, "other": True}
    assert evidence["gain_from_inpainting"]["block"] == pytest.approx(0.04)
    assert evidence["region_basis"]["upper"]["gain"] == pytest.approx(0.015)
    path.write_text(json.dumps({"occluded_pair_accuracy": {
        "sunglasses": {"direct": 0.8, "inpainted": 0.7}, "mask": {"direct": 0.6, "inpainted": 0.65},
        "block": {"direct": 0.7, "inpainted": 0.69}}}))
    assert cascade.cascade_policy(path)[0] == {"upper": False, "lower": True, "other": False}
    path.write_text(json.dumps({"occluded_pair_accuracy": {"block": {"direct": 0.7}}}))
    with pytest.raises(ValueError, match="numeric 'direct' and 'inpainted'"):
        cascade.cascade_policy(path)
    with pytest.raises(FileNotFoundError, match="cascade evidence not found"):
        cascade.cascade_policy(tmp_path / "none.json")


def test_run_export_calibrates_on_lfw_and_checks(tiny_model_path, tmp_path, data_root):
    report = publish.run_export(tiny_model_path, "embed", tmp_path / "exp",
                                data_dir=data_root / "lfw", calibration_pairs=36,
                                calibration_folds=[7, 8, 9])
    cal = report["calibration"]
    assert cal["pairs"] == 36 and cal["folds"] == [8, 9, 10]
    # the same 36 pairs scored by the export's own embed signature, the accuracies recomputed
    import tensorflow as tf
    faces, ia, ib, issame, folds = publish.lfw_pair_faces(data_root / "lfw", max_pairs=36,
                                                          folds=[7, 8, 9])
    embed = tf.saved_model.load(str(tmp_path / "exp" / "1")).signatures["embed"]
    emb = embed(images=tf.constant(faces))["embeddings"].numpy()
    scores = cosine(emb[ia], emb[ib])
    assert cal["accuracy"] == pytest.approx(accuracy_at(scores, issame, cal["threshold"]))
    assert cal["accuracy"] == pytest.approx(best_accuracy(scores, issame)[1])
    assert cal["ten_fold_accuracy"] == pytest.approx(kfold_accuracy(scores, issame, folds))
    assert report["self_check_max_abs_diff"]["embed"] < 1e-4
    meta = read_metadata(tmp_path / "exp" / "1")
    assert meta["threshold"] == pytest.approx(cal["threshold"])
    assert meta["calibration"]["accuracy"] == cal["accuracy"]


def test_cli_refuses_existing_version_before_work(tiny_model_path, tmp_path):
    (tmp_path / "exp" / "1").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "export.py"), "--model", str(tiny_model_path),
         "--export_dir", str(tmp_path / "exp"), "--threshold", "0.3"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_export_dir_that_is_a_file_is_one_line_error(tiny_model_path, tmp_path):
    """Refused before any work, with one line naming the problem (was a FileExistsError
    traceback after loading and self-check preparation)."""
    not_a_dir = tmp_path / "exports.txt"
    not_a_dir.write_text("notes")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "export.py"), "--model", str(tiny_model_path),
         "--export_dir", str(not_a_dir), "--threshold", "0.3"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"export: error: export directory {not_a_dir} exists and is not a directory"]
    assert not_a_dir.read_text() == "notes"
