"""The chat page after deletions: a deleted account's messages show the
placeholder author, and an open room that a moderator deletes says so."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from chat.models import Room
from tests.chat.sockets.test_room_delete import admin_delete_room, make_superuser
from tests.factories import UserFactory, add_member, post

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
expect.set_options(timeout=10_000)


def _room_with_a_deleted_author():
    alice, bob, carol = (UserFactory(username=name) for name in ("alice", "bob", "carol"))
    room = Room.objects.create(id="general", name="General")
    for user in (alice, bob, carol):
        add_member(room, user)
    original = post(room, carol, "carol was here")
    reply = post(room, bob, "hello carol", reply_to=original)
    carol.delete()
    return alice, room, original.pk, reply.pk


async def test_a_deleted_author_is_a_placeholder_and_a_deleted_room_says_so(server_factory, pages_for):
    # (a process of its own for the admin: see admin_post)
    server = await asyncio.to_thread(server_factory, "deletion-page")
    pages = pages_for(server.url)
    # given carol's message and bob's reply to it, then carol's account deleted
    alice, room, original_id, reply_id = await sync_to_async(_room_with_a_deleted_author)()
    try:
        await _check_the_page(pages, server, alice, room, original_id, reply_id)
    finally:
        await pages.close()
    assert pages.errors == [], f"JavaScript errors on the page: {pages.errors}"


async def _check_the_page(pages, server, alice, room, original_id, reply_id):
    page = await pages.open(alice)
    log = page.get_by_role("log")

    # the page shows her message under the placeholder, and the reply quotes it
    original = log.locator(f"#message-{original_id}")
    await expect(original.locator(".message-author")).to_have_text("Deleted user")
    await expect(original.locator(".message-author--deleted")).to_have_count(1)
    reply = log.locator(f"#message-{reply_id}")
    await expect(reply.locator(".quote-author")).to_have_text("Deleted user")
    await expect(log.get_by_text("carol", exact=True)).to_have_count(0)

    # when a moderator deletes the room the page is showing, the page says so
    await admin_delete_room(server, await make_superuser(), room)
    await expect(page.locator("#room-error")).to_have_text("This room was deleted by a moderator.")
    await expect(page.get_by_role("textbox", name="Message")).to_be_disabled()
