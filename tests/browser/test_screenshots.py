"""The room view as people see it, at desktop and phone width.

Writes PNGs to test-artifacts/screenshots/ (or CHAT_SCREENSHOT_DIR, which
scripts/screenshots.py points at docs/screenshots/), and checks on the way
that neither width scrolls sideways.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from playwright.async_api import expect

from chat import services
from chat.models import Membership, Message, ReadReceipt, Room
from tests.browser.conftest import DESKTOP, PHONE
from tests.conftest import token_for
from tests.factories import UserFactory, add_member, post
from tests.support.server import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
expect.set_options(timeout=10_000)

OUT = Path(os.environ.get("CHAT_SCREENSHOT_DIR") or ROOT / "test-artifacts" / "screenshots")

GENERAL = [
    # (days ago, minutes before now, author, text, reply to index)
    (1, 420, "dave", "Release 2.4 is tagged. Changelog: https://example.com/releases/2.4", None),
    (1, 415, "erin", "Nice work! Staging looks good on my side.", None),
    (0, 58, "bob", "Morning all. Standup in 10 minutes.", None),
    (0, 56, "carol", "I'll be 5 min late, the dentist ran over.", None),
    (0, 55, "alice", "No worries. Here's the board: https://example.com/board/sprint-14", None),
    (0, 31, "bob", "Quick question on the onboarding flow: are we keeping the email step?", None),
    (0, 30, "bob", "Design has two variants up for review.", None),
    (0, 22, "carol", "Yes, but optional. Variant B tested better with new users.", 5),
    (0, 20, "alice", "Agreed, let's go with B and revisit after the beta.", None),
    (0, 12, "dave", "I'll update the tickets and ping QA.", None),
    (0, 3, "alice", "Thanks Dave! Shipping the copy changes this afternoon.", None),
]


def _scene():
    names = ["alice", "bob", "carol", "dave", "erin"]
    users = {n: UserFactory(username=n) for n in names}
    general = Room.objects.create(id="general", name="general", topic="Company-wide announcements and chatter")
    design = Room.objects.create(id="design", name="design", topic="Critique and reviews")
    random = Room.objects.create(id="random", name="random")
    leads = Room.objects.create(id="leads", name="team-leads", visibility=Room.Visibility.PRIVATE)
    for room in (general, design, random):
        for user in users.values():
            add_member(room, user)
    for n in ("alice", "bob", "dave"):
        add_member(leads, users[n], Membership.Role.OWNER if n == "alice" else Membership.Role.MEMBER)

    now = timezone.now()
    stored = []
    for days, minutes, author, text, reply in GENERAL:
        message = post(general, users[author], text, reply_to=stored[reply] if reply is not None else None)
        Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(days=days, minutes=minutes))
        stored.append(message)
    for user in ("bob", "carol", "dave", "erin"):
        ReadReceipt.objects.create(user=users[user], room=general, last_read_message=stored[-2])
    for n in ("bob", "carol"):
        receipt = ReadReceipt.objects.get(user=users[n], room=general)
        receipt.last_read_message = stored[-1]
        receipt.save()  # moves readCount's histogram too (an update() would not)
    ReadReceipt.objects.create(user=users["alice"], room=general, last_read_message=stored[-1])

    for text in ("New mocks for settings are up", "Feedback by Friday please", "Dark mode variant too"):
        post(design, users["erin"], text)
    post(random, users["dave"], "Anyone up for lunch at 12:30?")
    ReadReceipt.objects.create(user=users["alice"], room=random, last_read_message=Message.objects.get(room=random))
    services.room_get_or_create_direct(user=users["alice"], other=users["bob"])
    dm_carol, _ = services.room_get_or_create_direct(user=users["alice"], other=users["carol"])
    post(dm_carol, users["carol"], "Got a minute after standup?")
    tokens = {n: token_for(users[n]) for n in ("bob", "carol", "erin")}
    return users["alice"], tokens


async def test_room_view_screenshots(pages, server, clients):
    # given a lively team: others online, one of them typing
    alice, tokens = await sync_to_async(_scene)()
    others = {n: await clients().connect(server.url, token=t) for n, t in tokens.items()}
    for client in others.values():
        await client.call("room:join", "general")
    OUT.mkdir(parents=True, exist_ok=True)

    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = await pages.open(alice, "/#general", viewport=viewport)
        await expect(page.locator('#app[data-connection="online"]')).to_be_attached()
        await expect(page.get_by_role("log").get_by_text("Thanks Dave!", exact=False)).to_be_visible()
        # The server tells a room only when typing starts: stop first, so each page sees a start.
        await others["erin"].call("chat:typing", {"roomId": "general", "isTyping": False})
        await others["erin"].call("chat:typing", {"roomId": "general", "isTyping": True})
        await expect(page.locator("#typing-line")).to_have_text("erin is typing…")
        await expect(page.locator("#receipt-line")).to_have_text("Seen by bob and carol")
        await page.locator("#composer-input").fill("Sounds good, I'll")
        await page.locator("#composer-input").blur()

        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow == 0, f"{label}: the page scrolls sideways by {overflow}px"
        await page.screenshot(path=str(OUT / f"room-{label}.png"))

    # The phone's other pane, and the sign-in page: for people to look at, not for docs.
    artifacts = ROOT / "test-artifacts" / "screenshots"
    artifacts.mkdir(parents=True, exist_ok=True)
    await page.get_by_role("button", name="Back to rooms").click()
    await expect(page.get_by_role("navigation")).to_be_visible()
    await page.screenshot(path=str(artifacts / "sidebar-phone.png"))
    login = await pages.browser.new_page(base_url=server.url, viewport=DESKTOP)
    await login.goto("/login/")
    await login.screenshot(path=str(artifacts / "login.png"))
    await login.close()
