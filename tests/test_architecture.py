"""The shape of the code, checked: no import cycles, Ray in two modules only, small modules, and an
architecture map (docs/architecture.md) that names every module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

PACKAGES = ("service", "trainers")
MAX_LINES = 300


def modules() -> dict[str, Path]:
    """Every module of the two packages by dotted name (a package by its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, name: str) -> set[str]:
    """The project modules `path` imports anywhere in its body (functions included; blocks under
    `if TYPE_CHECKING` run never and are left out)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if _type_checking_only(node):
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x` inside `package`
                parents = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports(path, name) if m in known and m != name} for name, path in known.items()}


def test_no_module_imports_itself_back() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                cycles.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_a_cycle_inside_a_function(tmp_path: Path) -> None:
    """The check above is only worth something if a cycle hidden in a function body is one."""
    (tmp_path / "a.py").write_text("def f():\n    from pkg import b\n")
    assert "pkg.b" in imports(tmp_path / "a.py", "pkg.a")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n")
    assert "pkg.d" not in imports(tmp_path / "c.py", "pkg.c")


def test_only_the_tune_runner_and_the_ray_adapter_import_ray() -> None:
    importers = {name for name, path in modules().items()
                 if any(m == "ray" or m.startswith("ray.") for m in imports(path, name))}
    assert importers == {"service.worker.tune_runner", "trainers.ray_adapter"}


def test_trainers_import_nothing_of_the_service() -> None:
    graph = import_graph()
    assert {(a, b) for a, deps in graph.items() if a.startswith("trainers") for b in deps
            if b.startswith("service")} == set()


def test_the_cli_starts_without_torch_or_the_database_layer() -> None:
    """The commands that talk to the API (submit, status, schedule, alerts) start in a fraction
    of a second: importing torch alone takes a second or more. Commands that need more (serve,
    token) import it when they run."""
    code = "import sys, service.cli; print(sorted({'torch', 'sqlalchemy', 'ray', 'fastapi'} & sys.modules.keys()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_is_small(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by what its parts do"


def architecture_map() -> set[str]:
    """The paths docs/architecture.md names: its first code block is a tree, two spaces of
    indent a level, a folder ending in `/`, one line each."""
    block = re.search(r"```text\n(.*?)```", (ROOT / "docs" / "architecture.md").read_text(), re.DOTALL)
    assert block, "docs/architecture.md has no ```text tree"
    named, folders = set(), []
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        entry = line.split()[0]
        folders = folders[:depth]
        path = "/".join([*folders, entry.rstrip("/")])
        if entry == "__init__.py":  # a package's own module is its folder
            path = "/".join(folders) + "/"
        named.add(path + ("/" if entry.endswith("/") else ""))
        if entry.endswith("/"):
            folders.append(entry.rstrip("/"))
    return named


def test_the_architecture_map_names_every_module_and_only_those() -> None:
    actual = {str(p.relative_to(ROOT).parent) + "/" if p.name == "__init__.py" else str(p.relative_to(ROOT))
              for p in modules().values()}
    named = {path for path in architecture_map() if path.split("/")[0] in PACKAGES}
    assert actual - named == set(), f"docs/architecture.md does not name: {sorted(actual - named)}"
    assert named - actual == set(), f"docs/architecture.md names what is not there: {sorted(named - actual)}"
