"""tools/train_idgan.py end to end on a tiny prepared tree: train, resume, flagfile, errors."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import keras

from occface.data.alignment import template_landmarks
from occface.inpainting.evaluate import load_generator
from occface.paths import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "train_idgan.py"
S = 32


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          env=env, timeout=900)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("idgan_tool")
    tree = root / "tree"
    rng = np.random.default_rng(0)
    rows = []
    pts = template_landmarks(S)
    for label, name in enumerate(["ann", "bob", "cid"]):
        (tree / name).mkdir(parents=True)
        base = rng.uniform(40, 215, 3)
        for i in range(3):
            img = np.clip(base + rng.normal(0, 25, (S, S, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tree / name / f"{i}.png"), img)
            coords = ",".join(f"{v:.3f}" for v in pts.reshape(-1))
            rows.append(f"{name}/{i}.png,{label},1,{coords}")
    header = "file,label,found," + ",".join(f"{a}{k}" for k in range(5) for a in "xy")
    (tree / "records.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    flagfile = root / "tiny.cfg"
    flagfile.write_text("\n".join([
        f"--data_dir={tree}", f"--image_size={S}", "--gen_width=4", "--dilation_rates=2",
        "--critic_width=4", "--critic_max_width=8", "--parser_width=4", "--parser_epochs=1",
        "--batch_size=4", "--steps=3", "--warmup_steps=2", "--checkpoint_interval=2",
        "--summary_interval=1", "--image_interval=0", "--noprogress"]) + "\n")
    return root


def test_train_and_config_guard(data, tmp_path):
    model_dir = tmp_path / "run"
    res = run_tool(f"--flagfile={data / 'tiny.cfg'}", f"--model_dir={model_dir}")
    assert res.returncode == 0, res.stderr
    assert "trained to step 3 (structure extra terms)" in res.stdout
    for name in ("generator.keras", "parser.keras", "config.json", "training.json"):
        assert (model_dir / name).is_file(), name
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["image_size"] == S and cfg["dilation_rates"] == [2] and cfg["num_classes"] == 3
    generator = load_generator(model_dir)
    assert generator.output_shape == (None, S, S, 3)
    # the same model_dir with another setting is refused
    other = run_tool(f"--flagfile={data / 'tiny.cfg'}", f"--model_dir={model_dir}", "--gamma=0.9")
    assert other.returncode == 1 and "different config" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (("--data_dir=x",), "--model_dir is required"),
    (("--model_dir=x", "--data_dir=/no/such/dir"), "training data not found"),
    (("--model_dir=x", "--flagfile=/no/such.cfg"), "such.cfg"),
])
def test_cheap_errors(args, message):
    res = run_tool(*args)
    assert res.returncode != 0 and message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_invalid_setting_is_one_line(data, tmp_path):
    res = run_tool(f"--flagfile={data / 'tiny.cfg'}", f"--model_dir={tmp_path / 'r'}",
                   "--image_size=30")
    assert res.returncode == 1 and "image_size must be a multiple of 4" in res.stderr
    assert "Traceback" not in res.stderr
