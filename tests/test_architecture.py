"""The package's shape, as README "How the code is organised" describes it: no import cycle
between modules or between stages (``digest.ingest``, ``digest.audience``, ...), and no private
name (``_helper``) imported from another module. Read from the source with ``ast``: imports inside
functions count too, so a cycle cannot hide behind a lazy import."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "digest"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _target(module: str, path: Path, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    """Each module's imports of other digest modules, and the private names imported."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    private: list[str] = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[module].update(a.name for a in node.names if a.name in MODULES)
            elif isinstance(node, ast.ImportFrom):
                target = _target(module, path, node)
                if not target or target.split(".")[0] != "digest":
                    continue
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        graph[module].add(f"{target}.{alias.name}")
                    elif target in MODULES:
                        graph[module].add(target)
                        name = alias.name
                        if name.startswith("_") and not name.startswith("__") and target != module:
                            private.append(f"{module} imports {target}.{name}")
    return graph, private


GRAPH, PRIVATE = _imports()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        return list(e.args[1])
    return None


def _stage(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_package_is_read():
    assert len(MODULES) > 100 and "digest.delivery.send" in MODULES
    assert "digest.delivery.ledger" in GRAPH["digest.delivery.send"]


def test_no_module_imports_itself_back():
    assert _cycle(GRAPH) is None


def test_no_cycle_between_stages():
    stages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        stages.setdefault(_stage(module), set()).update(
            _stage(t) for t in targets if _stage(t) != _stage(module)
        )
    # The package root re-exports nothing the stages need: leave it out.
    stages.pop("digest", None)
    for targets in stages.values():
        targets.discard("digest")
    assert _cycle(stages) is None


def test_no_private_name_is_imported_from_another_module():
    assert PRIVATE == []


@pytest.mark.parametrize(
    "graph,cycle",
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True), ({"a": {"b"}, "b": {"c"}, "c": set()}, False)],
)
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert (_cycle(graph) is not None) is cycle
