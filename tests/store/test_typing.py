"""The public generics are checked: mypy --strict accepts examples/typed_store.py and rejects misuse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MISUSE = """
import asyncio
from quvel_store import create_app
from examples.typed_store import Todo, TodosStore

async def misuse() -> None:
    store = create_app().use(TodosStore)
    a: str = store.remaining  # E: getter type
    store.add(42)  # E: action argument type
    b: str = store.add("x")  # E: action result type
    c: int = store.load(["a"])  # E: async action returns a task, not the value
    d: int = await store.load(["a"])
    e = store.state.todos[0].title + 1  # E: state field types
    store.select(lambda s: s.nope)  # E: selector sees the state model
    store.patch(lambda s: s.todos.append("not a todo"))  # E: draft typed as the state
    f: Todo = store.state.todos[0]
"""


def run_mypy(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MYPY_FORCE_COLOR": "0"},
    )


@pytest.mark.slow
def test_typed_example_passes_mypy_strict() -> None:
    result = run_mypy("examples/typed_store.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_rejects_each_misuse() -> None:
    snippet = ROOT / "tests" / "store" / f"_misuse_{os.getpid()}.py"
    snippet.write_text(MISUSE, encoding="utf-8")
    try:
        result = run_mypy(str(snippet.relative_to(ROOT)))
    finally:
        snippet.unlink()
    flagged = {int(m.group(1)) for m in re.finditer(rf"{snippet.name}:(\d+): error", result.stdout)}
    expected = {n for n, line in enumerate(MISUSE.splitlines(), start=1) if "# E:" in line}
    assert expected <= flagged, f"mypy missed lines {sorted(expected - flagged)}:\n{result.stdout}"
    assert flagged <= expected, f"mypy flagged correct lines {sorted(flagged - expected)}:\n{result.stdout}"
