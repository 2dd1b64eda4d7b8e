"""The layers of quvel_ws point one way and each imports alone.

``quvel_ws.protocol`` (sans-I/O) <- ``quvel_ws.client`` (driver, then the Echo layer);
``quvel_ws.protocol`` <- ``quvel_ws.server``; the library never imports ``quvel`` (the CLI).
The import checks run in a fresh interpreter, so nothing this test process loaded counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quvel_ws"

HEAVY = ("quvel_ws.client", "httpx", "reactivex", "pydantic", "quvel", "quvel_store")


def loaded_after(code: str) -> set[str]:
    """The top-level packages and quvel_ws.client modules in sys.modules after running ``code``."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "code",
    [
        "import quvel_ws.protocol",
        "import quvel_ws.protocol\nimport quvel_ws.server",
        "from quvel_ws.server import PusherServer, AppConfig, sign_params",
        "from quvel_ws.auth import Authorizer, AuthEndpoint",
    ],
)
def test_protocol_and_server_import_without_the_client(code: str) -> None:
    modules = loaded_after(code)
    assert not [m for m in HEAVY if m in modules], code


def test_protocol_loads_only_stdlib_orjson_and_nacl() -> None:
    baseline = loaded_after("")  # what the interpreter loads on its own (site hooks, __main__)
    modules = loaded_after("import quvel_ws.protocol")
    third_party = {m.split(".")[0] for m in modules - baseline} - set(sys.stdlib_module_names)
    assert third_party <= {"quvel_ws", "orjson", "nacl", "_sodium", "_cffi_backend"}, third_party
    assert not [m for m in modules if m.startswith(("quvel_ws.server", "quvel_ws.client", "websockets"))]


def test_the_package_face_is_lazy_and_never_loads_the_cli() -> None:
    assert not [m for m in HEAVY if m in loaded_after("import quvel_ws")]
    modules = loaded_after("import quvel_ws\nquvel_ws.WebSocketService\nquvel_ws.Member")
    assert "quvel_ws.client" in modules
    assert "quvel" not in modules
    assert "quvel_store" not in modules


def _runtime_imports(path: Path) -> set[str]:
    """quvel_ws modules ``path`` imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quvel_ws"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_file(sub) else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("quvel_ws"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_runtime_import_cycle() -> None:
    graph = {_module_name(p): _runtime_imports(p) for p in PACKAGE.rglob("*.py")}
    for name, deps in graph.items():
        deps.discard(name)
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [node, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                walk(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])


def test_layers_point_one_way() -> None:
    allowed = {
        "quvel_ws.protocol": ("quvel_ws.protocol", "quvel_ws.errors"),
        "quvel_ws.server": (
            "quvel_ws.server",
            "quvel_ws.protocol",
            "quvel_ws.errors",
            "quvel_ws._logs",
            "quvel_ws._lazy",
        ),
        "quvel_ws.client": ("quvel_ws.client", "quvel_ws.protocol", "quvel_ws.errors", "quvel_ws._"),
    }
    echo_layer = ("_echo", "_channels", "_subscription", "_threadsafe", "_service")
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        for layer, ok in allowed.items():
            if name.startswith(layer):
                bad = [m for m in _runtime_imports(path) if not m.startswith(ok)]
                assert not bad, f"{name} imports {bad}"
        if name.startswith("quvel_ws.client._") and not name.endswith(echo_layer):
            upward = [m for m in _runtime_imports(path) if m.endswith(echo_layer)]
            assert not upward, f"the driver module {name} imports the Echo layer: {upward}"


def test_no_module_reads_another_modules_private_names() -> None:
    offences = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quvel"):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                offences += [f"{path.name}: {name}" for name in private]
    assert not offences
