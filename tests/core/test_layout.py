"""The engine and the shell know no particular system: ``integration/core`` imports no connector
and no sync package, so a sync is added without touching it."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "integration" / "core"
NOT_FOR_CORE = ("integration.connectors", "integration.pipelines", "integration.cli")


def _imported(path: Path) -> list[tuple[str, int]]:
    """Absolute names of the modules ``path`` imports, relative imports resolved."""
    package = ["integration", "core", *path.relative_to(CORE).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append((module, node.lineno))
    return found


def test_core_imports_no_connector_and_no_sync() -> None:
    offending = [
        f"{path.relative_to(CORE.parent.parent)}:{line} imports {module}"
        for path in sorted(CORE.rglob("*.py"))
        for module, line in _imported(path)
        if module.startswith(NOT_FOR_CORE)
    ]
    assert offending == []


def test_the_import_check_resolves_relative_imports() -> None:
    sample = CORE / "engine.py"
    modules = [module for module, _ in _imported(sample)]
    assert "integration.core.flow" in modules
