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
