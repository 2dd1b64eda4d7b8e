"""The recipe page shows the store as shipped: the page and ``quvel/demo/notifications.py`` never drift."""

from __future__ import annotations

from pathlib import Path

from tests.docs.test_code_blocks import extract_blocks

ROOT = Path(__file__).resolve().parents[2]


def test_recipe_page_shows_the_shipped_store() -> None:
    blocks = extract_blocks(ROOT / "docs" / "recipes" / "notifications.md")
    source = (ROOT / "quvel" / "demo" / "notifications.py").read_text(encoding="utf-8")
    assert blocks, "no python block in docs/recipes/notifications.md"
    assert blocks[0].code == source, (
        "docs/recipes/notifications.md's first block differs from the shipped store"
    )


def test_model_recipe_page_shows_the_shipped_store() -> None:
    blocks = extract_blocks(ROOT / "docs" / "recipes" / "models.md")
    source = (ROOT / "quvel" / "demo" / "tasks.py").read_text(encoding="utf-8")
    assert blocks, "no python block in docs/recipes/models.md"
    assert blocks[0].code == source, "docs/recipes/models.md's first block differs from the shipped store"
