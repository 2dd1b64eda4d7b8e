"""The packages stack one way: quvel_ws <- quvel_store (+ its container) <- quvel_ui <- quvel (CLI, demo).

``tests/test_layers.py`` checks the layers inside quvel_ws; this file checks the layers between the
packages, the absence of runtime import cycles inside each, private names across modules, and the size of
each module (one concept per module, none over ``MAX_LINES``). See docs/internals/architecture.md.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("quvel_ws", "quvel_store", "quvel_ui", "quvel")
MAX_LINES = 600

# What each package may import at run time, by top-level package name.
ALLOWED = {
    "quvel_ws": {"quvel_ws"},
    "quvel_store": {"quvel_store", "quvel_ws"},
    "quvel_ui": {"quvel_ui", "quvel_store"},
    "quvel": {"quvel", "quvel_store", "quvel_ws", "quvel_ui"},
}


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_exists(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _quvel_imports(path: Path, *, lazy: bool) -> set[str]:
    """The project modules ``path`` imports at run time.

    ``if TYPE_CHECKING:`` blocks never count. Imports inside functions count only when ``lazy`` is true:
    the cycle check leaves them out (a deferred import is how a module breaks a cycle on purpose), the
    layer check keeps them (a deferred upward import is still an upward import).
    """
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def resolve(module: str, names: list[str]) -> None:
        for name in names:
            sub = f"{module}.{name}"
            found.add(sub if _module_exists(sub) else module)

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function = True
        if in_function and not lazy:
            pass
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in PACKAGES:
                resolve(node.module, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_the_layers_below(package: str) -> None:
    offences = []
    for path in _files(package):
        for module in _quvel_imports(path, lazy=True):
            if module.split(".")[0] not in ALLOWED[package]:
                offences.append(f"{_module_name(path)} imports {module}")
    assert not offences


def test_the_store_reaches_quvel_ws_only_through_its_public_face() -> None:
    offences = []
    for path in _files("quvel_store"):
        for module in _quvel_imports(path, lazy=True):
            if module.startswith("quvel_ws") and any(p.startswith("_") for p in module.split(".")[1:]):
                offences.append(f"{_module_name(path)} imports {module}")
    assert not offences


@pytest.mark.parametrize("package", PACKAGES)
def test_no_runtime_import_cycle(package: str) -> None:
    graph = {_module_name(p): _quvel_imports(p, lazy=False) for p in _files(package)}
    for name, deps in graph.items():
        deps.discard(name)
        # A package imports its own submodules from __init__; a submodule importing the package face
        # is the cycle that matters, so keep those edges.
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [node, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                walk(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_another_modules_private_names(package: str) -> None:
    offences = []
    for path in _files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                offences += [f"{_module_name(path)}: {node.module}.{name}" for name in private]
    assert not offences


@pytest.mark.parametrize("package", ["quvel_store", "quvel_ui"])
def test_the_library_never_loads_the_cli(package: str) -> None:
    probe = f"import {package}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "quvel" not in out
    assert not [m for m in out if m.startswith("quvel.")]


PUBLIC_FACES = (
    "quvel_ws",
    "quvel_ws.protocol",
    "quvel_ws.errors",
    "quvel_ws.server",
    "quvel_ws.auth",
    "quvel_ws.client",
    "quvel_store",
    "quvel_store.errors",
    "quvel_store.container",
    "quvel_store.testing",
    "quvel_ui",
)


def test_every_public_name_means_one_thing() -> None:
    """A name exported from two public modules is the same object in both (no two ``Channel`` classes)."""
    import importlib

    meaning: dict[str, dict[int, str]] = {}
    for face in PUBLIC_FACES:
        module = importlib.import_module(face)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            meaning.setdefault(name, {})[id(obj)] = f"{face}.{name}"
    clashes = {name: sorted(places.values()) for name, places in meaning.items() if len(places) > 1}
    assert not clashes


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_small(package: str) -> None:
    big = {_module_name(p): n for p in _files(package) if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"over {MAX_LINES} lines (one concept per module): {big}"
