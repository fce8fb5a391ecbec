"""The package layout's one-way imports: foundation <- stages <- CLI, and no import circles.

Reads every module's imports (top level and inside functions) with ``ast``, so a lazy import that
would close a circle or reach the wrong way is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "recommender")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (``from a.b import c`` counts as ``a.b``)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = _module_name(path)
            found = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES}
    return graph


def _stage(module: str) -> str:
    if module == "pipeline.__main__":  # `python -m pipeline`: an entry point, like the CLI
        return "recommender.cli"
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "recommender" and len(parts) > 1 else parts[0]


def test_the_foundation_imports_no_stage():
    for module, deps in _imports().items():
        if module.startswith("recommender.core"):
            assert all(d.startswith("recommender.core") for d in deps), (module, deps)


def test_pipeline_depends_only_on_the_foundation():
    for module, deps in _imports().items():
        if module.startswith("pipeline") and module != "pipeline.__main__":
            bad = {d for d in deps if not d.startswith(("pipeline", "recommender.core"))}
            assert not bad, f"{module} imports {bad}"


def test_nothing_but_the_cli_imports_the_cli():
    for module, deps in _imports().items():
        if not module.startswith("recommender.cli") and module != "pipeline.__main__":
            assert not any(d.startswith("recommender.cli") for d in deps), (module, deps)


def test_stages_do_not_import_each_other_in_a_circle():
    graph = _imports()
    stages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        for dep in deps:
            if _stage(dep) != _stage(module):
                stages.setdefault(_stage(module), set()).add(_stage(dep))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in stages.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(s for s in stages if reaches(s, s, {s}))
    assert not circles, f"stage import circles through {circles}: {stages}"


def test_no_module_import_circles():
    graph = _imports()
    known = set(graph)

    def resolve(dep: str) -> str | None:
        while dep and dep not in known:  # "a.b.c" where c is a name, not a module
            dep = dep.rpartition(".")[0]
        return dep or None

    edges = {m: {r for d in deps if (r := resolve(d)) and r != m} for m, deps in graph.items()}
    # A package's __init__ importing its own submodules is not a circle in the sense that matters.
    edges = {m: {d for d in ds if not m.startswith(d + ".")} for m, ds in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(edges):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, " -> ".join(cycle)
