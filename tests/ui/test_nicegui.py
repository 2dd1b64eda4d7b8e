"""The NiceGUI binding as a person uses it: the example page in a real headless Chromium (Debian's, driven
by Playwright), served by its own process, against a real ``quvel serve`` and the simulated back end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from quvel.demo import DemoBackend
from tests.peers import IN_CI, ROOT, free_port, stop_process_group
from tests.ui.conftest import Served, eventually, image_path

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("QUVEL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INVOICE = "App\\Notifications\\InvoicePaid"
WAIT_MS = 15_000


def chromium_path() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        message = "chromium is not installed: run scripts/test.sh (or apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return path


@pytest_asyncio.fixture
async def backend(quvel_serve: Served) -> AsyncIterator[DemoBackend]:
    async with DemoBackend(quvel_serve.credentials) as running:
        yield running


@pytest.fixture
def page_server(quvel_serve: Served, backend: DemoBackend) -> Iterator[str]:
    """The example page in its own process (NiceGUI owns that process's loop), on a free port."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PYTEST_CURRENT_TEST", None)  # NiceGUI would start in its own test mode
    proc = subprocess.Popen(
        [
            sys.executable,
            "examples/nicegui_notifications.py",
            "--port",
            str(port),
            "--ws-url",
            quvel_serve.ws_url,
            "--api-url",
            backend.url,
            "--reconnect-timeout",
            "0.5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)
        assert proc.stderr is not None
        errors = proc.stderr.read()
        proc.stderr.close()
        assert "Traceback" not in errors, errors


async def wait_for_page(url: str) -> None:
    async with httpx.AsyncClient() as http:

        async def up() -> bool:
            try:
                return (await http.get(f"{url}/?user=nobody")).status_code == 200
            except httpx.TransportError:
                return False

        ready = False

        def is_ready() -> bool:
            return ready

        async def probe() -> None:
            nonlocal ready
            ready = await up()

        await eventually(is_ready, f"the page at {url}", within=30, pause=probe)


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_as(browser: Browser, url: str, user: str) -> Page:
    context = await browser.new_context(viewport={"width": 1100, "height": 420})  # its own profile
    page = await context.new_page()
    await page.goto(f"{url}/?user={user}")
    await expect(page.locator(".connection-status")).to_have_text("● connected", timeout=WAIT_MS)
    await expect(page.locator(".presence")).to_contain_text(user, timeout=WAIT_MS)
    return page


async def test_notifications_presence_and_typing_in_a_real_browser(
    page_server: str, backend: DemoBackend, browser: Browser
) -> None:
    await wait_for_page(page_server)
    ann = await open_as(browser, page_server, "Ann")
    badge = ann.locator(".unread-badge")
    await expect(ann.get_by_text("Nothing yet.")).to_be_visible()
    await expect(badge).to_be_hidden()

    await backend.notify(1, INVOICE, {"title": "Invoice paid", "body": "Invoice #1041 was paid."})
    await backend.notify(1, INVOICE, {"title": "Task assigned", "body": "Ben assigned you a task."})
    await expect(ann.get_by_text("Task assigned")).to_be_visible(timeout=WAIT_MS)
    await expect(ann.get_by_text("Invoice paid")).to_be_visible(timeout=WAIT_MS)
    await expect(badge).to_have_text("2", timeout=WAIT_MS)

    invoice_row = ann.locator(".notification", has_text="Invoice paid")
    await invoice_row.get_by_role("button", name="mark as read").click()
    await expect(badge).to_have_text("1", timeout=WAIT_MS)
    await expect(invoice_row.get_by_role("button", name="mark as read")).to_have_count(0)
    assert [n.read_at is not None for n in backend.sent_to(1)] == [True, False]  # through the API

    ben = await open_as(browser, page_server, "Ben")
    await expect(ann.locator(".presence")).to_have_text("here: Ann, Ben", timeout=WAIT_MS)
    await ben.locator(".chat-input input").fill("Hello Ann")  # Ben types: a whisper, not a message
    await expect(ann.locator(".typing")).to_have_text("Ben typing…", timeout=WAIT_MS)
    await ann.screenshot(path=str(image_path("nicegui-notifications.png")))
    await ben.locator(".chat-input input").press("Enter")
    await expect(ann.locator(".message")).to_have_text(["Ben: Hello Ann"], timeout=WAIT_MS)
    await expect(ann.locator(".typing")).to_have_text("", timeout=WAIT_MS)  # the message ends the typing

    await ben.context.close()  # Ben's tab goes: his client, its stores and its channels are released
    await expect(ann.locator(".presence")).to_have_text("here: Ann", timeout=WAIT_MS)
    await ann.get_by_role("button", name="Mark all read").click()
    await expect(badge).to_be_hidden(timeout=WAIT_MS)
    await ann.context.close()
