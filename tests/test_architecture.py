"""The layout rules that keep the code readable (STYLE.md 13-14), checked on the source itself: no package of
src/spot imports another in a circle, nor does any module (a function-level or TYPE_CHECKING import counts: the
two modules still cannot be read apart), the task worlds (toy, arith) are plugins nothing else imports, and every
entry point reports user errors the same way."""

import ast
import re
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "spot"


def unit_of(module: str) -> str:
    """The unit a module belongs to: its subpackage (spot.evaluate, spot.rectify, ...) or, for a module at
    spot/ level, the module itself (spot.data, spot.losses, ...)."""
    return ".".join(module.split(".")[:2])


def module_of(path: Path) -> str:
    return "spot." + ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_of(p) for p in SRC.rglob("*.py")} | {"spot"}


def imports_of(path: Path) -> set[str]:
    """Every spot.* module `path` imports, at the top or inside a function (a lazy import still ties them);
    `from spot.a import b` names the module spot.a.b when b is one, else spot.a."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("spot.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("spot."):
                out |= {f"{name}.{a.name}" if f"{name}.{a.name}" in MODULES else name for a in node.names}
    return out


def module_graph() -> dict[str, set[str]]:
    return {module_of(path): imports_of(path) - {module_of(path)} for path in SRC.rglob("*.py")}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        src = unit_of(module_of(path))
        graph.setdefault(src, set())
        graph[src] |= {unit_of(m) for m in imports_of(path)} - {src}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_no_import_cycles_between_packages():
    graph = unit_graph()
    assert {"spot.evaluate", "spot.rectify", "spot.toy", "spot.arith", "spot.speed", "spot.training"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycles_between_modules():
    graph = module_graph()
    assert {"spot.rectify.pipeline", "spot.rectify.report", "spot.rectify.oracle_stage"} <= set(graph)
    assert "spot.rectify.config" in graph["spot.rectify.report"]  # a TYPE_CHECKING import is an edge
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": set(), "c": {"d"}, "d": {"c"}}) == ["c", "d", "c"]


def test_a_function_level_import_of_a_submodule_is_an_edge(tmp_path, monkeypatch):
    """The two ways the pipeline/report cycle hid: `from spot.pkg import mod` inside a function, and an import
    under TYPE_CHECKING."""
    pkg = tmp_path / "spot" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from spot.pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from spot.pkg.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "spot")
    monkeypatch.setattr(sys.modules[__name__], "MODULES", {"spot", "spot.pkg", "spot.pkg.a", "spot.pkg.b"})
    graph = module_graph()
    assert graph["spot.pkg.a"] == {"spot.pkg.b"} and graph["spot.pkg.b"] == {"spot.pkg.a"}
    assert find_cycle(graph) == ["spot.pkg.a", "spot.pkg.b", "spot.pkg.a"]


@pytest.mark.parametrize("world", ["toy", "arith"])
def test_nothing_outside_a_task_world_imports_it(world):
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if world not in p.relative_to(SRC).parts
                 and any(m == f"spot.{world}" or m.startswith(f"spot.{world}.") for m in imports_of(p))]
    assert offenders == []


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "rectify.py"])
def test_every_entry_point_reports_user_errors_one_way(script):
    text = (SRC.parents[1] / script).read_text()
    assert "except UserError as e:" in text and "exit_with(e)" in text


OUTSIDE = re.compile(r'[.][.]/shared|/ ["]shared|shared[/]data[/]')


def test_nothing_depends_on_a_path_outside_the_repository():
    """A user clones this repository alone: no code, test, config or doc may read or cite a file beside it
    (the workspace's reference shelf once held the GSM8K data and the method's summary)."""
    root = SRC.parents[1]
    kinds = {".py", ".yaml", ".md", ".sh", ".ipynb", ".toml", ".txt", ".cfg"}
    files = [p for p in root.rglob("*") if p.suffix in kinds and p.is_file()
             and not {".git", "outputs", "multirun", "data", ".cache"} & set(p.relative_to(root).parts)]
    assert len(files) > 100
    offenders = [f"{p.relative_to(root)}:{i}" for p in files
                 for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert offenders == []
