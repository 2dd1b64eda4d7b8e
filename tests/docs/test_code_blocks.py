"""Every ```python block in README.md and docs/**/*.md runs, each in a fresh interpreter, as a reader
would run it: saved to a file and run with ``python`` (so ``asyncio.run(main())``, no top-level
``await``). A block that says ``# run with: python -m asyncio`` on its first line is run that way instead
(top-level ``await`` allowed). A block needing more than ``pip install quvel`` says so in a ``# needs:``
comment naming each package or extra (``# needs: pip install "quvel[textual]"``). A block that is
intentionally a fragment is preceded by ``<!-- skip-test: why -->``; the reason is required and such
blocks must stay rare.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^\n]*$")
SKIP = re.compile(r"^\s*<!--\s*skip-test(?P<colon>:)?\s*(?P<reason>.*?)\s*-->\s*$")
TIMEOUT = 90.0
# At most this share of the blocks may opt out.
MAX_SKIPPED_SHARE = 0.1

ASYNCIO_REPL = "# run with: python -m asyncio"
# What `pip install quvel` brings (import names); anything else a block imports is named in `# needs:`.
CORE_IMPORTS = frozenset(
    {"quvel", "quvel_store", "quvel_ws", "reactivex", "websockets", "httpx", "pydantic", "pydantic_core"}
    | {"nacl", "orjson", "rich"}
)
# Imports that need an extra or another package, and the word `# needs:` must contain for each.
NEEDS = {
    "quvel_ui.textual": "quvel[textual]",
    "textual": "quvel[textual]",
    "quvel_ui.nicegui": "quvel[nicegui]",
    "nicegui": "quvel[nicegui]",
}

# Runs a block like a module under `python -m asyncio` (top-level await allowed).
RUNNER = """
import ast, asyncio, sys, types
path = sys.argv[1]
source = open(path, encoding="utf-8").read()
code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
module = types.ModuleType("__main__")
module.__file__ = path
sys.modules["__main__"] = module
result = eval(code, module.__dict__)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.exists()]


def extract_blocks(path: Path) -> list[Block]:
    """The python blocks of one Markdown file, with the line each starts on and any opt-out marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang, indent = opening["fence"], opening["lang"].lower(), len(opening["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not _closes(lines[i], fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1  # the closing fence
        if lang not in {"python", "py", "python3"}:
            continue
        skip_reason: str | None = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = SKIP.match(lines[j]) if j >= 0 else None
        if marker:
            skip_reason = marker["reason"] if marker["colon"] else ""
        blocks.append(Block(path, start + 1, "\n".join(body) + "\n", skip_reason))
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped.strip(fence[0]) == ""


ALL_BLOCKS = [b for f in markdown_files() for b in extract_blocks(f)]


def run_block(block: Block, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = ["-c", RUNNER, str(script)] if block.code.startswith(ASYNCIO_REPL) else [str(script)]
    return subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.skip_reason is None], ids=lambda b: b.id)
def test_code_block_runs(block: Block, tmp_path: Path) -> None:
    result = run_block(block, tmp_path)
    assert result.returncode == 0, (
        f"{block.id} failed (exit {result.returncode})\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}"
    )


def needed_packages(code: str) -> set[str]:
    """What a block imports beyond ``pip install quvel``, as the word its ``# needs:`` line must hold."""
    needed: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            extra = next((v for k, v in NEEDS.items() if name == k or name.startswith(k + ".")), None)
            top = name.split(".")[0]
            if extra is not None:
                needed.add(extra)
            elif top not in CORE_IMPORTS and top not in sys.stdlib_module_names and top != "quvel_ui":
                needed.add(top)
    return needed


def stated_needs(code: str) -> str:
    return " ".join(line for line in code.splitlines() if line.lstrip().startswith("# needs:"))


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_block_runs_as_a_saved_script_and_states_what_it_needs(block: Block) -> None:
    if not block.code.startswith(ASYNCIO_REPL):
        try:
            compile(block.code, block.id, "exec", dont_inherit=True)
        except SyntaxError as exc:
            pytest.fail(
                f"{block.id}: `python block.py` fails ({exc.msg}, line {exc.lineno}); wrap it in "
                f"`async def main()` + `asyncio.run(main())`, or start it with {ASYNCIO_REPL!r}"
            )
    stated = stated_needs(block.code)
    missing = sorted(p for p in needed_packages(block.code) if p not in stated)
    assert not missing, f"{block.id} imports {missing} but has no `# needs: pip install ...` line naming them"


def test_the_docs_have_code_blocks() -> None:
    assert len(ALL_BLOCKS) >= 1, "no ```python block found in README.md or docs/"


def test_opt_outs_are_rare_and_explained() -> None:
    skipped = [b for b in ALL_BLOCKS if b.skip_reason is not None]
    unexplained = [b.id for b in skipped if not b.skip_reason]
    assert not unexplained, f"<!-- skip-test: reason --> needs a reason: {unexplained}"
    assert len(skipped) <= max(1, int(len(ALL_BLOCKS) * MAX_SKIPPED_SHARE)), (
        f"{len(skipped)} of {len(ALL_BLOCKS)} blocks opt out: {[b.id for b in skipped]}"
    )


# --- the extractor itself -----------------------------------------------------------------------------


def test_needs_are_found_from_imports() -> None:
    code = "import pusher\nfrom quvel_ui.textual import bind\nimport asyncio\nfrom quvel_ws import Member\n"
    assert needed_packages(code) == {"pusher", "quvel[textual]"}
    assert stated_needs("# needs: pip install pusher\nx = 1\n") == "# needs: pip install pusher"


def test_extractor_finds_blocks_markers_and_ignores_other_languages(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "# t\n\n```python\nx = 1\n```\n\n<!-- skip-test: a fragment -->\n\n```py\nthis is not python\n```\n"
        "```ts\nconst a = 1\n```\n````python\n```\nnested = True\n````\n  ```python\n  y = 2\n  ```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(doc)
    assert [(b.line, b.skip_reason) for b in blocks] == [(3, None), (9, "a fragment"), (15, None), (19, None)]
    assert blocks[0].code == "x = 1\n"
    assert blocks[2].code == "```\nnested = True\n"
    assert blocks[3].code == "y = 2\n"


def test_runner_reports_failures_and_runs_top_level_await_only_when_the_block_says_so(tmp_path: Path) -> None:
    code = "import asyncio\nawait asyncio.sleep(0)\nprint('done')\n"
    result = run_block(Block(tmp_path / "a.md", 1, code, None), tmp_path)
    assert result.returncode != 0
    assert "SyntaxError" in result.stderr  # what `python block.py` says
    ok = Block(tmp_path / "a.md", 1, f"{ASYNCIO_REPL}\n{code}", None)
    result = run_block(ok, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    bad = Block(tmp_path / "a.md", 1, "assert 1 == 2, 'boom'\n", None)
    result = run_block(bad, tmp_path)
    assert result.returncode != 0
    assert "boom" in result.stderr
