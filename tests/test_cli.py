import os

import pytest

from occface.cli import parse_int_ranges


def test_parse_int_ranges_by_hand():
    assert parse_int_ranges("0-6") == [0, 1, 2, 3, 4, 5, 6]
    assert parse_int_ranges("7,9") == [7, 9]
    assert parse_int_ranges(["0-1", "4 6-7"]) == [0, 1, 4, 6, 7]
    assert parse_int_ranges("") == []
    with pytest.raises(ValueError):
        parse_int_ranges("a-3")


def test_import_tensorflow_quietly_leaves_only_the_tools_own_stderr():
    """TF's import-time C++ log lines (printed whatever TF_CPP_MIN_LOG_LEVEL says on oneDNN
    CPUs) are hidden; what the process writes to stderr afterwards is not."""
    import subprocess
    import sys
    code = ("import sys; from occface.cli import import_tensorflow_quietly; "
            "import_tensorflow_quietly(); import tensorflow as tf; tf.constant(1.0) * 2; "
            "print('tool: error: x', file=sys.stderr); print(tf.__version__)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "tool: error: x\n"
    assert proc.stdout.strip().startswith("2.")


def test_config_flags_follow_the_dataclass_fields_and_their_metadata():
    import dataclasses

    from absl import flags

    from occface.cli import config_from_flags, define_config_flags

    @dataclasses.dataclass
    class Config:
        name: str = ""
        kind: str = dataclasses.field(default="a", metadata={"help": "The kind.",
                                                            "choices": ("a", "b")})
        depth: int = dataclasses.field(default=50, metadata={"choices": (18, 50)})
        count: int = dataclasses.field(default=3, metadata={"lower_bound": 1})
        rate: float = 0.5
        on: bool = True
        folds: tuple = dataclasses.field(default=(), metadata={"flag": "string"})
        tags: tuple = ("x",)

    values = flags.FlagValues()
    define_config_flags(Config, help_texts={"rate": "The rate."}, flag_values=values)
    assert [values[n].flag_type() for n in ("name", "kind", "depth", "count", "rate", "on",
                                            "folds", "tags")] == [
        "string", "string enum", "string enum", "int", "float", "bool", "string",
        "comma separated list of strings"]
    assert values["kind"].help == "<a|b>: The kind." and values["rate"].help == "The rate."
    assert values["name"].help == "name" and values["name"].default is None
    values(["prog", "--depth=18", "--folds=0-2 5", "--tags=y,z", "--noon"])
    assert config_from_flags(Config, values) == dict(
        name="", kind="a", depth=18, count=3, rate=0.5, on=False, folds="0-2 5",
        tags=["y", "z"])
    for bad in ("--kind=c", "--depth=34", "--count=0"):
        fresh = flags.FlagValues()
        define_config_flags(Config, flag_values=fresh)
        with pytest.raises(flags.IllegalFlagValueError):
            fresh(["prog", bad])


def test_training_inputs_are_checked_in_order_and_fail_as_one_line(tmp_path, capsys):
    from occface.cli_training import check_training_inputs
    (tmp_path / "pairs.txt").write_text("")
    good = dict(model_dir="m", data_dir=str(tmp_path), pairs=str(tmp_path / "pairs.txt"),
                init="", val_dir=str(tmp_path))
    check_training_inputs("tool", good, files=("pairs",), paths=("init",), dirs=("val_dir",))
    for changes, line in [
            (dict(model_dir=""), "--model_dir is required"),
            (dict(data_dir=""), "--data_dir is required"),
            (dict(data_dir="nowhere"), "training data not found: --data_dir=nowhere"),
            (dict(pairs=str(tmp_path)), f"--pairs file not found: {tmp_path}"),
            (dict(init="gone.keras"), "--init not found: gone.keras"),
            (dict(val_dir=str(tmp_path / "pairs.txt")), f"--val_dir not found: {tmp_path}"),
    ]:
        with pytest.raises(SystemExit) as done:
            check_training_inputs("tool", dict(good, **changes), files=("pairs",),
                                  paths=("init",), dirs=("val_dir",))
        assert done.value.code == 1
        assert capsys.readouterr().err.startswith(f"tool: error: {line}")


def test_checked_calibration_folds(capsys):
    from occface.cli import USAGE_ERROR, checked_calibration_folds
    assert checked_calibration_folds("tool", ["1", "10"]) == [0, 9]
    assert checked_calibration_folds("tool", None) is None
    with pytest.raises(SystemExit) as done:
        checked_calibration_folds("tool", ["0"])
    assert done.value.code == USAGE_ERROR
    assert capsys.readouterr().err == "tool: error: --calibration_folds must be numbers 1-10, " \
                                      "got ['0']\n"


def test_run_training_turns_failures_into_one_line_and_closes_the_bar(capsys):
    from occface.cli_training import INTERRUPTED, StepProgress, run_training
    from occface.train import NonFiniteLossError

    class Bar(StepProgress):
        closed = 0

        def close(self):
            Bar.closed += 1

    assert run_training("tool", lambda: {"step": 3}, Bar(False, ())) == {"step": 3}
    for error, code, line in [(ValueError("bad setting\nmore"), 1, "bad setting"),
                              (NonFiniteLossError("stopping at step 4"), 1, "stopping at step 4"),
                              (FileNotFoundError(), 1, "FileNotFoundError"),
                              (KeyboardInterrupt(), INTERRUPTED, "interrupted; run the same")]:
        def train():
            raise error
        with pytest.raises(SystemExit) as done:
            run_training("tool", train, Bar(False, ()))
        assert done.value.code == code
        assert capsys.readouterr().err.startswith(f"tool: error: {line}")
    assert Bar.closed >= 5


def test_step_progress_shows_the_chosen_scalars(capsys):
    from occface.cli_training import StepProgress
    progress = StepProgress(True, ("loss", "accuracy"), ".2f")
    progress(1, 2, {"loss": 1.234, "accuracy": 0.5, "lr": 0.1})
    progress(2, 2, {"loss": 1.0})
    progress.close()
    err = capsys.readouterr().err
    assert "loss=1.23 accuracy=0.50" in err and "lr=" not in err and "step 2/2 loss=1.00" in err
    StepProgress(False, ("loss",))(1, 2, {"loss": 1.0})
    assert capsys.readouterr().err == ""
