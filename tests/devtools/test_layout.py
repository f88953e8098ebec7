"""The runtime package stays apart from what it is tested against and from the development tools.

``integration/`` is the worker. The stand-ins (``big_chat``, ``our_api``, ``intempus``,
``case_store``, ``crm_providers`` and their ``standin_kit``) and the development tools that start
them (``devtools``: benchmark, demo) are not part of it: the worker imports them at most inside a
function (the CLI's ``bench`` and ``demo``), never when a module is loaded. The stand-ins, for
their part, never import the worker: a stand-in sharing the worker's code would agree with its
mistakes.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNTIME = "integration"
STAND_INS = (
    "big_chat",
    "our_api",
    "intempus",
    "case_store",
    "crm_internal",
    "crm_providers",
    "standin_kit",
)
OUTSIDE_THE_RUNTIME = frozenset({"devtools", *STAND_INS})


def _imports(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[str, int, bool]]:
    """(top-level package, line, inside a function?) of every absolute import under ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno, in_function
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno, in_function
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _imports(node, inside)


def _modules(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    return files


def test_the_runtime_imports_no_stand_in_or_development_tool_when_loaded() -> None:
    offending = [
        f"{path.relative_to(REPO)}:{line} imports {package}"
        for path in _modules(RUNTIME)
        for package, line, in_function in _imports(ast.parse(path.read_text(), str(path)))
        if package in OUTSIDE_THE_RUNTIME and not in_function
    ]
    assert offending == []


def test_the_stand_ins_never_import_the_worker_or_the_development_tools() -> None:
    offending = [
        f"{path.relative_to(REPO)}:{line} imports {package}"
        for stand_in in STAND_INS
        for path in _modules(stand_in)
        for package, line, _ in _imports(ast.parse(path.read_text(), str(path)))
        if package in (RUNTIME, "devtools")
    ]
    assert offending == []


LOADED = """
import importlib, json, pkgutil, sys
import integration

OUTSIDE = set(sys.argv[1:])
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in OUTSIDE)

for info in pkgutil.walk_packages(integration.__path__, "integration."):
    importlib.import_module(info.name)
after_import = loaded()

from integration.cli import Cli
Cli()
print(json.dumps({"import": after_import, "parser": loaded()}))
"""


def test_loading_the_worker_and_its_command_line_loads_no_stand_in() -> None:
    """The import check at run time, which also sees ``importlib`` (the CLI's plugins): every
    runtime module loads without any stand-in or development tool; the command line's parser
    registers ``bench`` (so it loads ``devtools.bench.cli``) but still loads no stand-in."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *sorted(OUTSIDE_THE_RUNTIME)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert loaded["import"] == []
    assert [m for m in loaded["parser"] if m.startswith("devtools")] == []  # loaded when asked
    assert [m for m in loaded["parser"] if m.split(".")[0] in STAND_INS] == []
