"""The package's import graph: components never import the engine, and no module imports itself back.

Every ``import`` of a ``ssdkd_env`` module counts, wherever it stands: at the top, inside a
function, or under ``if TYPE_CHECKING:``. An edge goes from a module to the module it names:
``from ssdkd_env.x import y`` is an edge to ``ssdkd_env.x.y`` when that is a module, else to
``ssdkd_env.x`` (a package's ``__init__``, whose re-exports are edges of their own).
"""

from __future__ import annotations

import ast
from pathlib import Path

import ssdkd_env

PACKAGE_DIR = Path(ssdkd_env.__file__).parent
COMPONENT_PACKAGES = ("methods", "synthesis", "replay", "distillation")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ["ssdkd_env", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that ``source`` (the text of ``module``) imports anywhere in it."""
    found: set[str] = set()

    def owner(name: str) -> str | None:
        """``name``, or the closest enclosing module of it that exists."""
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(filter(None, (owner(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.update(filter(None, [name if name in known else owner(target)]))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    known = set(modules)
    return {
        name: imported_modules(path.read_text(), name, path.name == "__init__.py", known)
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_imports_are_found_everywhere_in_a_module() -> None:
    known = {"ssdkd_env", "ssdkd_env.engine", "ssdkd_env.engine.config", "ssdkd_env.replay", "ssdkd_env.replay.base"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ssdkd_env.engine.config import EngineConfig\n"
        "def f():\n"
        "    import ssdkd_env.engine\n"
        "from . import base\n"
        "from .base import MEMORIES\n"
        "from ssdkd_env import errors\n"
    )
    found = imported_modules(source, "ssdkd_env.replay.buffer", False, known)
    assert found == {"ssdkd_env.engine.config", "ssdkd_env.engine", "ssdkd_env.replay.base", "ssdkd_env"}
    assert imported_modules("from . import base\n", "ssdkd_env.replay", True, known) == {"ssdkd_env.replay.base"}


def test_find_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_components_never_import_the_engine() -> None:
    graph = import_graph()
    components = [m for m in graph if m.split(".")[1:2] and m.split(".")[1] in COMPONENT_PACKAGES]
    assert len(components) > 15
    offending = {
        module: sorted(t for t in graph[module] if t == "ssdkd_env.engine" or t.startswith("ssdkd_env.engine."))
        for module in components
    }
    assert {module: targets for module, targets in offending.items() if targets} == {}


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "ssdkd_env.engine.engine" in graph and "ssdkd_env.context" in graph["ssdkd_env.synthesis.base"]
    assert find_cycle(graph) is None
