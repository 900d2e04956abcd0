"""durably's modules import each other in one direction only.

The graph is of runtime imports at module level: imports under ``if TYPE_CHECKING:`` (for
annotations) and imports inside functions (made on use) are left out. ``from . import x``
counts as an import of the submodule ``x``, not of the package, as Python runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import durably

ROOT = Path(durably.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    out: dict[str, tuple[Path, bool]] = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _imported(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    out = set()
    for alias in node.names:
        sub = f"{prefix}.{alias.name}"
        out.add(sub if sub in known else prefix)
    return out & known


def _runtime_imports(
    body: list[ast.stmt], module: str, is_package: bool, known: set[str]
) -> set[str]:
    deps: set[str] = set()
    for node in body:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            deps |= _runtime_imports(node.orelse, module, is_package, known)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            deps |= _imported(module, is_package, node, known)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # imported on use
        else:
            for name in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(node, name, None)
                if isinstance(sub, list):
                    deps |= _runtime_imports(sub, module, is_package, known)
    return deps


def import_graph() -> dict[str, set[str]]:
    """Each durably module and the durably modules it imports at run time."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = _runtime_imports(tree.body, module, is_package, known) - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_imports() -> None:
    graph = import_graph()
    assert "durably.control" in graph["durably.registry"]
    assert "durably.web.state" in graph["durably.web.views"]
    # A type-only import is not an edge.
    assert "durably.registry" not in graph["durably.run"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_surfaces_import_no_worker_module() -> None:
    """The registry, ``Run`` and the control plane talk to the worker through the
    ``LocalWorker`` protocol; the registry makes its worker on use."""
    graph = import_graph()
    for module in ("durably.registry", "durably.run", "durably.control", "durably.hooks"):
        assert not any(
            d == "durably.worker" or d.startswith("durably.worker.") for d in graph[module]
        ), module


def test_dashboard_modules_import_in_one_direction() -> None:
    graph = import_graph()
    assert "durably.web.app" not in graph["durably.web.views"]
    assert "durably.web.app" not in graph["durably.web.actions"]
    assert "durably.web.actions" not in graph["durably.web.views"]


def _all_imports(path: Path, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every durably module ``path`` imports, at any depth (in functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deps: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            deps |= _imported(module, is_package, node, known)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps.add(node.module)
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
    return deps


def test_the_core_never_imports_the_ai_layer() -> None:
    """``durably.ai`` (the extra ``durably[ai]``) sits on the public API; nothing else in
    the package imports it, not even on use."""
    modules = _modules()
    known = set(modules)
    assert "durably.ai" in known
    for module, (path, is_package) in modules.items():
        if module == "durably.ai" or module.startswith("durably.ai."):
            continue
        deps = _all_imports(path, module, is_package, known)
        bad = {d for d in deps if d == "durably.ai" or d.startswith(("durably.ai.", "pydantic_ai"))}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_import_durably_loads_no_ai_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, durably, durably.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('durably.ai', 'pydantic_ai'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
