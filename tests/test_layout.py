"""The package's layering: imports point down the layers of DESIGN.md and form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mysetlist_slo

PACKAGE = Path(mysetlist_slo.__file__).parent

# The layers of ../shared/DESIGN.md, bottom first. A module may import its own layer or lower ones.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_regex": 0,
    "_terminal": 0,
    "_numbers": 0,
    "config": 1,
    "sources": 2,
    "store": 3,
    "engine": 3,  # the rollup step on DuckDB or Spark, beside the store
    "lake": 3,  # the raw Parquet lake beside the store; loads rollups into it
    "collect": 4,  # live pulls land through the store; nothing analyses or reports from here
    "slo": 5,
    "vitals": 5,
    "capacity": 5,
    "resilience": 5,
    "report": 6,
    "rules": 6,
    "demo": 6,
    "cli": 7,
    "__main__": 7,
    "": 8,  # the package's own __init__: the public API re-exports every layer
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """Return (line, module) for each import of the package in ``path``, nested ones too."""
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from mysetlist_slo.report import notebook`` imports the submodule itself.
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).is_dir()
                      or (PACKAGE.parent / (f"{target}.{alias.name}".replace(".", "/") + ".py"))
                      .is_file()]
    return [(line, name) for line, name in found
            if name == "mysetlist_slo" or name.startswith("mysetlist_slo.")]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYERS:
        pytest.fail(f"{module}: not placed in a layer; add its top-level name to LAYERS")
    return LAYERS[top]


@pytest.fixture(name="import_graph", scope="module")
def fixture_import_graph() -> dict[str, list[tuple[int, str, Path]]]:
    """Map every module of the package to the package modules it imports."""
    graph: dict[str, list[tuple[int, str, Path]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        graph[module] = [(line, target, path) for line, target in _imports(path, module)]
    return graph


def test_imports_point_down_the_layers(
        import_graph: dict[str, list[tuple[int, str, Path]]]) -> None:
    """No module imports a module of a higher layer (presentation > analysis > store > sources)."""
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module} (layer {_layer(module)}) imports "
        f"{target} (layer {_layer(target)})"
        for module, edges in import_graph.items()
        for line, target, path in edges
        if target != "mysetlist_slo" and _layer(target) > _layer(module)
    ]
    assert not offences, "imports pointing up the layers:\n" + "\n".join(offences)


def test_no_module_imports_the_public_api(
        import_graph: dict[str, list[tuple[int, str, Path]]]) -> None:
    """Library modules import their neighbours by name, never the package's public __init__."""
    offences = [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}"
                for module, edges in import_graph.items() if module != "mysetlist_slo"
                for line, target, path in edges
                if target == "mysetlist_slo" and module != "mysetlist_slo.cli"]
    assert not offences, "\n".join(offences)


def test_no_import_cycles(import_graph: dict[str, list[tuple[int, str, Path]]]) -> None:
    """Module imports form no cycle (the config model never imports OpenSLO back, for one)."""
    modules = set(import_graph)

    def resolve(target: str) -> str | None:
        # ``from mysetlist_slo.x import name`` names a module or a package (its __init__).
        return target if target in modules else None

    edges = {module: sorted({t for _, target, _ in import_graph[module]
                             if (t := resolve(target)) and t != module
                             and not module.startswith(t + ".")})  # a package's own parents
             for module in modules}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in edges[module]:
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target):], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)


def test_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The import walker finds nested and relative imports, so the layering test can fail."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from mysetlist_slo.report import weekly\n"
                      "from .budgets import x\n", "utf-8")
    found = {name for _, name in _imports(source, "mysetlist_slo.slo.mod")}
    assert {"mysetlist_slo.report", "mysetlist_slo.report.weekly"} <= found
    assert "mysetlist_slo.slo.budgets" in found
    assert _layer("mysetlist_slo.report") > _layer("mysetlist_slo.slo.budgets")
