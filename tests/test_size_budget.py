"""The size budget that keeps entry points thin and functions readable, checked on the source with `ast`:
an entry point (train.py, evaluate.py, rectify.py, report.py) is at most 80 lines, a function in src/spot or in
an entry point at most 60. What is over budget is named below with the reason, so growing past the budget is a
decision someone wrote down, not a drift."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("train.py", "evaluate.py", "rectify.py", "report.py")
ENTRY_LINES, FUNCTION_LINES = 80, 60

# file -> why it is longer than ENTRY_LINES (none: each entry point's job lives in src/spot, spot.run,
# spot.evaluate_run, spot.rectify_run)
ENTRY_EXCEPTIONS: dict[str, str] = {}
# "file:function" -> why it is longer than FUNCTION_LINES
FUNCTION_EXCEPTIONS: dict[str, str] = {}


def long_functions(source: str, limit: int) -> dict[str, int]:
    """{name: lines} of every function (methods and nested ones included) longer than `limit` lines, counted
    from its `def` to its last line, decorators left out."""
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                out[node.name] = lines
    return out


def python_files() -> list[Path]:
    return [ROOT / name for name in ENTRY_POINTS] + sorted((ROOT / "src" / "spot").rglob("*.py"))


def test_entry_points_are_thin():
    over = {name: len((ROOT / name).read_text().splitlines()) for name in ENTRY_POINTS}
    over = {name: n for name, n in over.items() if n > ENTRY_LINES}
    assert set(over) == set(ENTRY_EXCEPTIONS), f"entry points over {ENTRY_LINES} lines: {over}; a file listed in " \
                                               "ENTRY_EXCEPTIONS that is back in budget leaves the list"


def test_functions_fit_the_budget():
    over = {f"{path.relative_to(ROOT)}:{name}": n for path in python_files()
            for name, n in long_functions(path.read_text(), FUNCTION_LINES).items()}
    assert set(over) == set(FUNCTION_EXCEPTIONS), f"functions over {FUNCTION_LINES} lines: {over}"


def test_train_py_only_composes_and_calls_run():
    tree = ast.parse((ROOT / "train.py").read_text())
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["main"]
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "run" in calls


def test_the_counter_finds_a_long_function_and_a_long_method():
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    source = f"def short():\n    pass\n\n\ndef long():\n{body}\n\n\nclass C:\n    def method(self):\n" + \
             "\n".join(f"        y{i} = {i}" for i in range(59))
    assert long_functions(source, 60) == {"long": 61}
    assert long_functions(source, 59) == {"long": 61, "method": 60}
