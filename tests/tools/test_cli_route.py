"""Every tool in tools/ goes through occface.cli.run: one-line flag errors (exit 2), help on
stdout with exit 0, and flag mistakes reported before TensorFlow is imported."""
import os
import subprocess
import sys

import pytest

from occface.paths import REPO_ROOT

TOOLS = sorted(p.stem for p in (REPO_ROOT / "tools").glob("*.py"))

#: Runs a tool as __main__ and, however it exits, appends whether TensorFlow was imported to
#: the file named by $TF_IMPORTED_FILE.
_PROBE = """
import os, runpy, sys
tool = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(tool, run_name="__main__")
finally:
    with open(os.environ["TF_IMPORTED_FILE"], "w") as f:
        f.write(str("tensorflow" in sys.modules))
"""


def _run(tool, *args, tmp_path):
    flag_file = tmp_path / f"{tool}.tf"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_IMPORTED_FILE=str(flag_file))
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(REPO_ROOT / "tools" / f"{tool}.py"),
                           *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    return proc, flag_file.read_text() == "True"


def test_every_tool_is_covered():
    assert TOOLS == ["evaluate", "export", "finetune_recognizer", "import_model", "inpaint",
                     "prepare_dataset", "train_idgan", "train_occlusion_segmenter",
                     "train_recognizer", "verify"]
    for tool in TOOLS:
        text = (REPO_ROOT / "tools" / f"{tool}.py").read_text()
        assert "cli.run(main, PROG" in text, tool
        assert "app.run(" not in text and "def _parse_flags" not in text, tool


@pytest.mark.parametrize("tool", TOOLS)
def test_misspelled_flag_is_one_line_before_tensorflow(tool, tmp_path):
    proc, tf_imported = _run(tool, "--nosuchflag=1", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{tool}: error: Unknown command line flag 'nosuchflag'"]
    assert proc.stdout == ""
    assert not tf_imported


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("flag", ["--helpshort", "--help", "-h"])
def test_help_exits_zero(tool, flag, tmp_path):
    proc, tf_imported = _run(tool, flag, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not tf_imported
    assert proc.stderr == ""
    assert "\nflags:\n" in proc.stdout and f"{tool}.py:" in proc.stdout  # the tool's own flags


@pytest.mark.parametrize("tool, args, line", [
    ("prepare_dataset", ["--input_dir=.", "--output=o", "--quality=101"],
     "prepare_dataset: error: flag --quality=101: 101 is not an integer in the range [0, 100]"),
    ("verify", ["a.jpg", "b.jpg", "--threshold=2"],
     "verify: error: flag --threshold=2: 2.0 is not a number in the range [-1.0, 1.0]"),
    ("export", ["--model=m", "--export_dir=e", "--threshold=-1.5"],
     "export: error: flag --threshold=-1.5: -1.5 is not a number in the range [-1.0, 1.0]"),
    ("import_model", ["--onnx=a.onnx", "--output=o.keras", "--threshold=1.01"],
     "import_model: error: flag --threshold=1.01: 1.01 is not a number in the range "
     "[-1.0, 1.0]"),
    ("prepare_dataset", ["--output=o"],
     "prepare_dataset: error: --input_dir is required"),
    ("evaluate", ["extra", "--model=m"], "evaluate: error: unexpected arguments: extra"),
    ("train_occlusion_segmenter", ["--data_dir=."],
     "train_occlusion_segmenter: error: --lfw_root has no pairs.txt: nowhere"),
    ("finetune_recognizer", ["--aligned_dir=missing"],
     "finetune_recognizer: error: --aligned_dir not found: missing"),
    ("import_model", ["--onnx=a.onnx", "--output=o.keras", "--calibration_folds=0"],
     "import_model: error: ONNX file not found: a.onnx"),
    ("import_model", [f"--onnx={REPO_ROOT / 'README.md'}", "--output=o.keras",
                      "--calibration_folds=0"],
     "import_model: error: --calibration_folds must be numbers 1-10, got ['0']"),
    ("export", ["--model=.", "--export_dir=e", "--calibration_folds=11"],
     "export: error: --calibration_folds must be numbers 1-10, got ['11']"),
    ("train_idgan", ["--image_size=abc"],
     "train_idgan: error: flag --image_size=abc: invalid literal for int() with base 10: 'abc'"),
    ("train_idgan", ["--model_dir=m", "--data_dir=.", "--train_folds=x-y"],
     "train_idgan: error: bad integer list: invalid literal for int() with base 10: 'x'"),
])
def test_bad_values_and_missing_inputs_before_tensorflow(tool, args, line, tmp_path):
    if tool == "train_occlusion_segmenter":
        args = args + ["--lfw_root=nowhere"]
    proc, tf_imported = _run(tool, *args, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line]
    assert not tf_imported


def test_choices_spelled_out_for_tensorflow_free_parsing_match_the_library():
    from occface import choices
    from occface.models.iresnet import STAGE_BLOCKS
    from occface.train.finetune import ARMS
    assert choices.FINETUNE_ARMS == tuple(ARMS)
    assert choices.DEPTHS == tuple(sorted(STAGE_BLOCKS))
