"""Browser fixtures: Debian's Chromium driven by Playwright's async API.

Async, not sync: the sync API parks an event loop in the test's thread, which
makes Django refuse ORM calls there ("async context") and collides with
pytest-asyncio's loops. Data is set up through the ORM in sync helpers called
with sync_to_async, and pages sign in with a real session cookie.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: run scripts/ensure_chromium.py (apt install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def session_cookie_for(user: User) -> str:
    """A real Django session of `user` in the test database (sync: ORM)."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@dataclass
class Pages:
    """Opens signed-in pages, one browser context (cookie jar) per user."""

    browser: object
    base_url: str
    contexts: list = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(self, user: User, path: str = "/", viewport: dict[str, int] | None = None):
        cookie = await sync_to_async(session_cookie_for)(user)
        context = await self.browser.new_context(viewport=viewport or DESKTOP, base_url=self.base_url)
        self.contexts.append(context)
        await context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": self.base_url}])
        page = await context.new_page()
        self.watch(page)
        await page.goto(path)
        return page

    def watch(self, page) -> None:
        async def on_dialog(dialog) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
def pages_for(browser) -> Callable[[str], Pages]:
    made: list[Pages] = []

    def make(base_url: str) -> Pages:
        pages = Pages(browser=browser, base_url=base_url)
        made.append(pages)
        return pages

    return make


@pytest.fixture
async def pages(pages_for, server) -> AsyncIterator[Pages]:
    """Signed-in pages on the shared server; page errors fail the test."""
    opened = pages_for(server.url)
    yield opened
    await opened.close()
    await _server_transactions_done()
    assert opened.errors == [], f"JavaScript errors on the page: {opened.errors}"


async def _server_transactions_done(timeout: float = 5) -> None:
    """Wait until no other session is busy on the test database. A closed page
    leaves the server finishing its last events (a read receipt, a join) for a
    moment; the flush after the test (TRUNCATE of every table) deadlocked with
    such a transaction once in CI, leaving the next test a dirty database."""
    from django.db import connection

    @sync_to_async
    def busy_sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state NOT IN ('idle')"
            )
            return int(cursor.fetchone()[0])

    if connection.vendor != "postgresql":
        return
    await asyncio.sleep(0.2)  # the server hears the pages' sockets close
    deadline = asyncio.get_running_loop().time() + timeout
    while await busy_sessions() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
