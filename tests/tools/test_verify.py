"""The verify tool and its library on real LFW photos, with a tiny exported recognizer."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from occface.data import NoFaceError
from occface.models import build_recognizer
from occface.paths import REPO_ROOT
from occface.serving import export_model
from occface.verify import FaceVerifier

SAMPLES = REPO_ROOT / "saved_models" / "samples"
TOOL = REPO_ROOT / "tools" / "verify.py"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_recognizer(depth=18, variant="baseline", input_shape=(32, 32, 3),
                             embedding_size=16, width=4, seed=0)
    base = tmp_path_factory.mktemp("export") / "tiny"
    export_model(base, kind="embed", recognizer=model, threshold=0.5,
                 metadata={"calibration": {"threshold": 0.5, "source": "test"}})
    return base


@pytest.fixture(scope="module")
def verifier(exported):
    return FaceVerifier(exported)


def test_same_image_scores_one_and_different_people_less(verifier, exported):
    import tensorflow as tf
    a = SAMPLES / "Serena_Williams" / "Serena_Williams_0001.jpg"
    b = SAMPLES / "George_W_Bush" / "George_W_Bush_0001.jpg"
    same = verifier.compare(a, a)
    assert same["score"] == pytest.approx(1.0, abs=1e-5) and same["same"] is True
    assert same["threshold"] == 0.5
    diff = verifier.compare(a, b)
    assert diff["score"] < 1.0 - 1e-4
    # The score is the cosine of the export's own embed signature on the two aligned faces,
    # recomputed here with numpy; the verdict flips exactly at that score.
    embed = tf.saved_model.load(str(exported / "1")).signatures["embed"]
    faces = np.stack([verifier.load_face(a).aligned, verifier.load_face(b).aligned])
    e = embed(images=tf.constant(faces, tf.uint8))["embeddings"].numpy().astype(np.float64)
    cosine = float(e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1]))
    assert diff["score"] == pytest.approx(cosine, abs=1e-5)
    assert FaceVerifier(exported, threshold=cosine - 1e-3).compare(a, b)["same"] is True
    assert FaceVerifier(exported, threshold=cosine + 1e-3).compare(a, b)["same"] is False
    face = diff["faces"][0]
    assert face["num_faces"] >= 1 and face["score"] > 0.6
    w, h = face["box"][2:]
    assert 60 < w < 200 and 60 < h < 250  # LFW faces are ~110-130 px in a 250 px frame


def test_errors_name_the_problem(verifier, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        verifier.load_face(tmp_path / "missing.jpg")
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="cannot decode.*corrupt.jpg"):
        verifier.load_face(bad)
    blank = tmp_path / "gradient.png"
    cv2.imwrite(str(blank), np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1)))
    with pytest.raises(NoFaceError, match="no face found in .*gradient.png"):
        verifier.load_face(blank)


def test_several_faces_are_reported(verifier, tmp_path):
    a = cv2.imread(str(SAMPLES / "Naomi_Watts" / "Naomi_Watts_0001.jpg"))
    b = cv2.imread(str(SAMPLES / "Junichiro_Koizumi" / "Junichiro_Koizumi_0001.jpg"))
    path = tmp_path / "two.jpg"
    cv2.imwrite(str(path), np.concatenate([a, b], axis=1))
    face = verifier.load_face(path)
    # LFW photos sometimes hold a background face too, hence >= 2
    assert face.num_faces >= 2
    assert any(f"{face.num_faces} faces found, used the most central" in n for n in face.notes)


def test_missing_threshold_is_refused(tmp_path):
    model = build_recognizer(depth=18, variant="baseline", input_shape=(32, 32, 3),
                             embedding_size=8, width=4)
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(ValueError, match="no decision threshold"):
        FaceVerifier(path)
    assert FaceVerifier(path, threshold=0.3).threshold == 0.3
    with pytest.raises(ValueError, match=r"threshold must be a cosine similarity in \[-1, 1\], "
                                         "got 2"):
        FaceVerifier(path, threshold=2)


def _run(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli_pair_json_and_gallery_and_errors(exported, tmp_path):
    a = SAMPLES / "Arnold_Schwarzenegger" / "Arnold_Schwarzenegger_0002.jpg"
    proc = _run(a, a, "--model", exported, "--json", "--noocclusion")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["same"] is True and result["score"] == pytest.approx(1.0, abs=1e-5)

    proc = _run(a, "--gallery", SAMPLES, "--model", exported, "--top_k", "3", "--noocclusion")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first = next(line for line in lines if line.strip().startswith("1 "))
    assert "Arnold_Schwarzenegger" in first and "1.000" in first  # the probe itself is in there

    proc = _run(a, tmp_path / "nope.jpg", "--model", exported, "--noocclusion")
    assert proc.returncode == 2 and "nope.jpg" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run(a, "--model", exported)
    assert proc.returncode == 2 and "expected two images" in proc.stderr


def test_cli_refuses_a_directory_as_image_and_a_threshold_outside_cosine_range():
    """Found before TensorFlow is imported, each as one line (a directory was "not found")."""
    a = SAMPLES / "Serena_Williams" / "Serena_Williams_0001.jpg"
    proc = _run(SAMPLES, a)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"verify: error: {SAMPLES} is a directory, not an image "
                                        "file (to rank against a folder: --gallery)"]
    proc = _run(SAMPLES, "--gallery", SAMPLES)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"verify: error: {SAMPLES} is a directory, not an image "
                                        "file"]
    proc = _run(a, "--gallery", a)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"verify: error: --gallery is not a directory: {a}"]
    for value in ("2", "-1.5"):
        proc = _run(a, a, f"--threshold={value}")
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            f"verify: error: flag --threshold={value}: {float(value)} is not a number in the "
            "range [-1.0, 1.0]"]


def test_shipped_demo_model_on_real_pairs():
    """The README's main command: the default (shipped) model on people it never saw."""
    verifier = FaceVerifier()
    # the shipped default: threshold from the validation fold (0-based 6 = 1-based 7)
    assert verifier.metadata["calibration"]["folds"] == [7]
    assert verifier.licence.startswith("derived from insightface")
    s = SAMPLES / "Serena_Williams"
    same = verifier.compare(s / "Serena_Williams_0001.jpg", s / "Serena_Williams_0002.jpg")
    diff = verifier.compare(s / "Serena_Williams_0001.jpg",
                            SAMPLES / "George_W_Bush" / "George_W_Bush_0001.jpg")
    assert same["same"] and not diff["same"]
    assert same["score"] > diff["score"] + 0.2


def test_cli_flags_the_masked_sample():
    masked = REPO_ROOT / "saved_models" / "occluded_samples" / "Serena_Williams_0002_mask.jpg"
    proc = _run(SAMPLES / "Serena_Williams" / "Serena_Williams_0001.jpg", masked, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    first, second = result["faces"]
    assert not first["occlusion"]["occluded"]
    assert second["occlusion"]["occluded"] and second["occlusion"]["kind"] == "lower"


@pytest.mark.parametrize("inpaint_lower", [True, False])
def test_cascade_export_inpaints_the_occluded_face_per_policy(tmp_path, inpaint_lower):
    """A cascade export: the masked sample (lower face) goes through verify_masked."""
    import keras
    from occface.occlusion_estimate import default_occlusion_estimator
    recognizer = build_recognizer(depth=18, variant="baseline", input_shape=(32, 32, 3),
                                  embedding_size=16, width=4, seed=0)
    img, hole = keras.Input((32, 32, 3)), keras.Input((32, 32, 1))
    fill = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(
        keras.layers.Concatenate()([img, hole]))
    generator = keras.Model([img, hole], keras.layers.Rescaling(255.0)(fill))
    policy = {"upper": False, "lower": inpaint_lower, "other": False}
    base = tmp_path / "cascade"
    export_model(base, kind="cascade", recognizer=recognizer, generator=generator,
                 threshold=0.5, inpaint_policy=policy)
    estimator = default_occlusion_estimator()
    cascade = FaceVerifier(base, occlusion_estimator=estimator)
    plain = FaceVerifier(base)  # no occlusion estimate: plain embed path
    a = SAMPLES / "Serena_Williams" / "Serena_Williams_0001.jpg"
    masked = REPO_ROOT / "saved_models" / "occluded_samples" / "Serena_Williams_0002_mask.jpg"
    with_cascade, without = cascade.compare(a, masked), plain.compare(a, masked)
    info = with_cascade["cascade"]
    assert info["regions"][1] == "lower" and info["inpainted"] == [False, inpaint_lower]
    assert any("cascade: lower-face occlusion" in n for n in with_cascade["faces"][1]["notes"])
    if inpaint_lower:  # the masked face was filled in before embedding: another score
        assert abs(with_cascade["score"] - without["score"]) > 1e-4
    else:
        assert with_cascade["score"] == pytest.approx(without["score"], abs=1e-5)
    assert "cascade" not in cascade.compare(a, a)  # nothing occluded: plain path

    # tools/verify.py --gallery: a ranking scores every pair as compare() does, so through the
    # cascade when a face is occluded
    gallery = tmp_path / "gallery"
    (gallery / "Serena_masked").mkdir(parents=True)
    (gallery / "Serena_masked" / masked.name).write_bytes(masked.read_bytes())
    (gallery / "Serena").mkdir()
    (gallery / "Serena" / a.name).write_bytes(a.read_bytes())
    ranked, ranked_plain = cascade.rank(a, gallery), plain.rank(a, gallery)
    scores = {row["identity"]: row["score"] for row in ranked["ranking"]}
    assert scores["Serena_masked"] == pytest.approx(with_cascade["score"], abs=1e-5)
    assert scores["Serena"] == pytest.approx(1.0, abs=1e-5)
    assert ranked["cascade"] == {"policy": policy, "probe_inpainted": False,
                                 "gallery_inpainted": [str(gallery / "Serena_masked" / masked.name)]
                                 if inpaint_lower else []}
    plain_scores = {row["identity"]: row["score"] for row in ranked_plain["ranking"]}
    assert plain_scores["Serena_masked"] == pytest.approx(without["score"], abs=1e-5)
    assert "cascade" not in ranked_plain


def test_help_names_the_default_models_licence():
    proc = _run("--helpshort")
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "saved_models/arcface_mbf_occ_ft" in text
    assert "non-commercial research use only" in text
