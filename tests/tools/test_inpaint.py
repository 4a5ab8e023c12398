"""tools/inpaint.py end to end: images mode (synthetic occlusion, given masks), pairs benchmark,
one-line errors."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import keras

from occface.inpainting import build_generator
from occface.paths import REPO_ROOT
from tests.by_hand import cosine, kfold_accuracy

TOOL = REPO_ROOT / "tools" / "inpaint.py"
S = 32


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          env=env, timeout=600)


def face(rng):
    yy, xx = np.mgrid[:S, :S] / S
    a, b, c = rng.uniform(40, 200, 3)
    img = np.stack([a + 40 * xx, b + 40 * yy, c + 20 * (xx + yy)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint_tool")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    build_generator(S, width=4).save(root / "generator.keras")
    # an LFW-like aligned tree: 4 people x 2 images, and a 2-fold pairs file
    people = ["Ann_A", "Bob_B", "Cid_C", "Dee_D"]
    for name in people:
        (root / "lfw" / name).mkdir(parents=True)
        for i in (1, 2):
            cv2.imwrite(str(root / "lfw" / name / f"{name}_{i:04d}.png"),
                        cv2.cvtColor(face(rng), cv2.COLOR_RGB2BGR))
    lines = ["2\t2", "Ann_A\t1\t2", "Bob_B\t1\t2", "Ann_A\t1\tBob_B\t2", "Ann_A\t2\tCid_C\t1",
             "Cid_C\t1\t2", "Dee_D\t1\t2", "Cid_C\t2\tDee_D\t1", "Bob_B\t1\tDee_D\t2"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    recognizer = keras.Sequential([keras.Input((S, S, 3)), keras.layers.Rescaling(1 / 255.0),
                                   keras.layers.AveragePooling2D(8), keras.layers.Flatten()])
    recognizer.save(root / "recognizer.keras")
    return root


def test_images_mode_with_synthetic_occlusion(setup, tmp_path):
    out = tmp_path / "out"
    res = run_tool(f"--generators=wID={setup}", f"--images={setup / 'lfw' / 'Ann_A'}",
                   "--occlusion=block", f"--output_dir={out}")
    assert res.returncode == 0, res.stderr
    assert "wrote 2 side-by-side PNGs" in res.stdout
    strip = cv2.imread(str(out / "Ann_A_0001.png"))
    assert strip.shape == (S + 16, 6 * S + 10, 3)  # input, OCC, Telea, NS, wID, truth
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"OCC", "Telea", "NS", "wID"}
    assert metrics["settings"]["occlusion"] == "block" and metrics["git_commit"] is not None


def test_images_mode_with_mask_directory(setup, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    m = np.zeros((S, S), np.uint8)
    m[8:20, 8:20] = 255
    for i in (1, 2):
        cv2.imwrite(str(masks / f"Bob_B_{i:04d}.png"), m)
    res = run_tool(f"--generators={setup / 'generator.keras'}", "--classical=",
                   f"--images={setup / 'lfw' / 'Bob_B'}", f"--masks={masks}",
                   f"--output_dir={tmp_path / 'out'}")
    assert res.returncode == 0, res.stderr
    strip = cv2.imread(str(tmp_path / "out" / "Bob_B_0002.png"))
    assert strip.shape == (S + 16, 3 * S + 4, 3)  # input, OCC, ID-GAN (no truth)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"] == {}


def test_pairs_benchmark(setup, tmp_path):
    out = tmp_path / "bench"
    res = run_tool(f"--generators=wID={setup}", f"--pairs={setup / 'pairs.txt'}",
                   "--pairs_folds=0-1", f"--aligned_dir={setup / 'lfw'}",
                   f"--recognizer={setup / 'recognizer.keras'}", "--examples=2",
                   f"--output_dir={out}")
    assert res.returncode == 0, res.stderr
    assert "| Telea |" in res.stdout and "| wID |" in res.stdout
    results = json.loads((out / "results.json").read_text())
    report = results["report"]
    assert report["n_pairs"] == 8 and set(report["methods"]) == {"OCC", "Telea", "NS", "wID"}
    # the clean pairs' accuracy by brute force from the recognizer's features (mean of 8x8
    # blocks of the faces in [0, 1]), with pairs.txt's two folds of four pairs
    pairs = [line.split("\t") for line in (setup / "pairs.txt").read_text().splitlines()[1:]]

    def feature(name, number):
        bgr = cv2.imread(str(setup / "lfw" / name / f"{name}_{int(number):04d}.png"))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) / 255.0
        return rgb.reshape(S // 8, 8, S // 8, 8, 3).mean(axis=(1, 3)).ravel()

    firsts = [(p[0], p[1]) for p in pairs]
    seconds = [(p[0], p[2]) if len(p) == 3 else (p[2], p[3]) for p in pairs]
    scores = cosine([feature(*k) for k in firsts], [feature(*k) for k in seconds])
    issame = [len(p) == 3 for p in pairs]
    assert report["clean"]["accuracy"] == pytest.approx(
        kfold_accuracy(scores, issame, [0, 0, 0, 0, 1, 1, 1, 1]))
    assert (out / "results.md").is_file() and len(list((out / "examples").glob("*.png"))) == 2


def test_metrics_json_is_strict_when_a_method_reproduces_the_truth(tmp_path):
    """A flat face: Telea and NS fill the hole with its exact colour, PSNR = inf, which strict
    JSON cannot spell (Python wrote a bare Infinity): it is written as null."""
    faces = tmp_path / "faces"
    faces.mkdir()
    cv2.imwrite(str(faces / "flat.png"), np.full((S, S, 3), 128, np.uint8))
    out = tmp_path / "out"
    # seed 1 puts flat.png's 12x12 hole at rows 8-19, cols 14-25: away from the border, where
    # Telea is exact on a flat face (a hole one pixel from the border leaves a rounding error)
    res = run_tool(f"--images={faces}", f"--output_dir={out}", "--size=32", "--seed=1")
    assert res.returncode == 0, res.stderr

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=refuse)["metrics"]
    assert metrics["Telea"]["psnr"] is None and metrics["NS"]["psnr"] is None
    assert metrics["Telea"]["ssim"] == pytest.approx(1.0)
    assert metrics["OCC"]["psnr"] > 0  # finite: the unfilled hole differs from the truth


def test_the_shipped_inpaint_export_runs(setup, tmp_path):
    """saved_models/idgan_wid_lfw64 is a SavedModel export (inpaint signature on 112 px faces):
    32 px faces are resized to it and back, the known pixels kept."""
    out = tmp_path / "out"
    res = run_tool(f"--generators=wID={REPO_ROOT / 'saved_models' / 'idgan_wid_lfw64'}",
                   f"--images={setup / 'lfw' / 'Ann_A'}", "--classical=", "--size=32",
                   f"--output_dir={out}")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"OCC", "wID"}
    assert metrics["wID"]["psnr"] > metrics["OCC"]["psnr"] + 3  # the hole is filled
    strip = cv2.imread(str(out / "Ann_A_0001.png"))
    assert strip.shape == (S + 16, 4 * S + 6, 3)  # input, OCC, wID, truth
    # the wID panel equals the truth outside the hole (where OCC, the unfilled face, differs)
    occ, wid, truth = (strip[:S, k * (S + 2):k * (S + 2) + S] for k in (1, 2, 3))
    hole = np.any(occ != truth, axis=-1)
    assert 0 < hole.sum() < S * S
    np.testing.assert_array_equal(wid[~hole], truth[~hole])
    assert np.any(wid[hole] != occ[hole])


def test_an_embed_export_is_no_generator():
    res = run_tool(f"--generators={REPO_ROOT / 'saved_models' / 'lcd_ir18_w16_lfw'}",
                   f"--images={REPO_ROOT / 'saved_models' / 'samples' / 'Serena_Williams'}",
                   "--output_dir=x")
    assert res.returncode == 1
    (line,) = res.stderr.splitlines()
    assert line.startswith("inpaint: error: ") and line.endswith(
        "is a SavedModel without an inpaint signature (kind 'embed'); export one with "
        "tools/export.py --kind inpaint")


@pytest.mark.parametrize("args, message", [
    ((), "--output_dir is required"),
    (("--output_dir=x",), "either --images"),
    (("--output_dir=x", "--images=nope.png"), "image not found: nope.png"),
    (("--output_dir=x", "--images=a.png", "--generators=wID=missing"), "generator not found"),
    (("--output_dir=x", "--pairs=missing.txt"), "--pairs file not found"),
    (("--output_dir=x", "--occlusion=hat"), "occlusion"),
])
def test_one_line_errors(args, message):
    res = run_tool(*args)
    assert res.returncode != 0
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
