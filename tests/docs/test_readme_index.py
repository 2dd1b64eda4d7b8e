"""The README is the index: it links every page under docs/ and shows the install line of every extra a
user may want (the ``dev`` and ``bench`` extras are for working on quvel, not with it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NOT_FOR_USERS = {"dev", "bench"}


def test_the_readme_links_every_docs_page() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)", README))
    pages = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md") if "internals" not in p.parts
    }
    assert pages - linked == set(), "docs pages the README does not link"


def test_the_readme_shows_how_to_install_every_user_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    wanted = set(extras) - NOT_FOR_USERS
    assert wanted  # textual, nicegui, redis at least
    missing = {name for name in wanted if f'pip install "quvel[{name}]"' not in README}
    assert missing == set()
