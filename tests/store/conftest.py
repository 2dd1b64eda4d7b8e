"""Fixtures for the store core tests: a fresh app per test, disposed afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quvel_store import App, create_app


@pytest.fixture
def app() -> Iterator[App]:
    application = create_app()
    yield application
    application.dispose()
