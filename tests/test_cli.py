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
