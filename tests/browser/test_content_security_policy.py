"""The Content-Security-Policy holds in a real browser: the chat page, the admin
and the API docs work under it, and Chromium reports no violation."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.browser.conftest import eventually
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.browser


@sync_to_async
def chat_world():
    alice = UserFactory(password=None, username="alice", is_staff=True, is_superuser=True)
    bob = UserFactory(password=None, username="bob")
    room = RoomFactory(id="csp-room", name="CSP room", created_by=alice)
    add_member(room, alice)
    add_member(room, bob)
    post(room, bob, "hello under a policy")
    return alice


async def test_the_pages_work_under_the_policy_without_violations(pages):
    alice = await chat_world()
    violations: list[str] = []

    def watch(page):
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    # the chat page: its module script (import map by nonce) connects and shows the room
    page = await pages.open(alice, "/")
    watch(page)
    await page.reload()
    await page.wait_for_selector('#app[data-connection="online"]', timeout=15_000)
    await page.wait_for_selector("text=hello under a policy", timeout=10_000)
    assert await page.eval_on_selector(".message .avatar", "el => el.style.getPropertyValue('--hue')") != ""

    # the admin: index, a change list and a change form
    for path in ("/admin/", "/admin/auth/user/", f"/admin/auth/user/{alice.pk}/change/"):
        response = await page.goto(path)
        assert response.status == 200, path
        assert "Content-Security-Policy" in {k.title(): v for k, v in response.headers.items()}

    # Swagger UI renders the schema; Redoc renders it too
    await page.goto("/api/docs/")
    await page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    await page.goto("/api/redoc/")

    async def redoc_rendered() -> bool:
        return "Chat API" in await page.inner_text("body")

    await eventually(redoc_rendered, timeout=15, what="Redoc to render the schema")

    # Redoc's template links Google's fonts; the policy refusing them is the
    # point (no third-party origin, and the server may have no internet).
    violations = [v for v in violations if "fonts.googleapis.com" not in v]
    assert violations == [], violations
