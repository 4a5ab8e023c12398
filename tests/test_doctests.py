"""The docstring examples (``>>>``) of every occface module run, and give what they show."""
import doctest
import importlib

import pytest

from occface.paths import REPO_ROOT


def _modules_with_examples():
    names = []
    for path in sorted((REPO_ROOT / "occface").rglob("*.py")):
        if ">>>" in path.read_text():
            rel = path.relative_to(REPO_ROOT).with_suffix("")
            names.append(".".join(rel.parts).removesuffix(".__init__"))
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    assert {"occface.layers.lcd", "occface.losses", "occface.utils"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} has '>>>' but no example was collected"
    assert result.failed == 0, "".join(report)
