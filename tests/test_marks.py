"""The slow marks are honest: `make test-fast` (-m "not slow") trains no network through the
harness.

Read from the test modules' source (no collection, no import), by one rule: a test trains
when it, or a fixture of its own module that it requests, runs a harness command that
trains (TRAINING) and asserts that command succeeded (`assert done.returncode == 0`), or
when it requests a shared fixture that trains (TRAINING_FIXTURES). Such a test must be
marked slow, on itself or by its module's pytestmark. A command that is expected to be
refused (`returncode != 0`) trains nothing and stays fast.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# The harness commands that train a network when they succeed.
TRAINING = {"experiments.train", "experiments.rerun", "experiments.resume",
            "experiments.lr_find", "experiments.diagnose"}
# Fixtures in tests/fixtures/ that train (digits.py: 4 epochs of the seed network).
TRAINING_FIXTURES = {"digits_run"}


def _marked_slow(node: ast.AST) -> bool:
    return "mark.slow" in ast.unparse(node)


def _runs_training_to_success(function: ast.FunctionDef) -> bool:
    """`x = <anything>.run("experiments.train", ...)` then `assert x.returncode == 0 ...`."""
    started = set()
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "run"
                and node.value.args and isinstance(node.value.args[0], ast.Constant)
                and node.value.args[0].value in TRAINING):
            started |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return any(isinstance(node, ast.Assert) and f"{name}.returncode == 0" in ast.unparse(node.test)
               for node in ast.walk(function) for name in started)


def trains_unmarked(source: str) -> list[str]:
    """The tests in a module's source that train (the rule above) without a slow mark."""
    tree = ast.parse(source)
    module_slow = any(isinstance(n, ast.Assign) and _marked_slow(n.value)
                      and any(getattr(t, "id", None) == "pytestmark" for t in n.targets)
                      for n in tree.body)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def trains(function: ast.FunctionDef, seen: frozenset[str]) -> bool:
        requested = {a.arg for a in function.args.args}
        return (_runs_training_to_success(function) or bool(requested & TRAINING_FIXTURES)
                or any(trains(functions[name], seen | {name})
                       for name in requested - seen if name in functions))

    return [name for name, function in functions.items()
            if name.startswith("test_") and not module_slow
            and not any(_marked_slow(d) for d in function.decorator_list)
            and trains(function, frozenset({name}))]


def test_every_test_that_trains_through_the_harness_is_marked_slow():
    unmarked = {p.name: found for p in sorted(TESTS.glob("test_*.py"))
                if (found := trains_unmarked(p.read_text()))}
    assert unmarked == {}


def test_the_rule_finds_a_training_test_and_spares_a_refused_command():
    source = '''
import pytest

@pytest.fixture
def trained(harness_cli):
    done = harness_cli.run("experiments.train", "trainer.epochs=1")
    assert done.returncode == 0, done.stderr
    return done

def test_uses_the_trained_run(trained):
    pass

def test_predicts_from_digits(digits_run):
    pass

@pytest.mark.slow
def test_marked(trained):
    pass

def test_a_bad_value_is_refused(harness_cli):
    done = harness_cli.run("experiments.train", "model.depth=10")
    assert done.returncode != 0
'''
    assert trains_unmarked(source) == ["test_uses_the_trained_run", "test_predicts_from_digits"]
    assert trains_unmarked("import pytest\npytestmark = [pytest.mark.slow]\n"
                           + source.split("import pytest", 1)[1]) == []
