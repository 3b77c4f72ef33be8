"""The chat page in a real Chromium, against a real server process.

Each test sets data up through the ORM (committed: the server reads the same
test database), signs pages in with real session cookies, and drives them the
way a person would: by role and label.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from chat.models import Message, ReadReceipt, Room
from tests.browser.conftest import PHONE, eventually
from tests.conftest import token_for
from tests.factories import PASSWORD, UserFactory, add_member, post
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
expect.set_options(timeout=10_000)


def _room_with(*names: str, room_id: str = "general", name: str = "General"):
    users = [UserFactory(username=n) for n in names]
    room = Room.objects.create(id=room_id, name=name, topic="Say hello")
    for user in users:
        add_member(room, user)
    return (*users, room)


async def _sender(clients, server, user, room_id: str):
    """A python-socketio client of `user`, joined to the room."""
    token = await sync_to_async(token_for)(user)
    client = await clients().connect(server.url, token=token)
    assert (await client.call("room:join", room_id))["status"] == "ok"
    return client


async def online(page, timeout: float = 10_000) -> None:
    """Connected, every room rejoined and caught up."""
    await expect(page.locator('#app[data-connection="online"]')).to_be_attached(timeout=timeout)


def composer(page):
    return page.get_by_role("textbox", name="Message")


def log(page):
    return page.get_by_role("log")


async def send(page, text: str) -> None:
    await composer(page).fill(text)
    await composer(page).press("Enter")


async def test_sign_in_with_the_form_then_sign_out(server, browser):
    # given a user who is not signed in
    user = await sync_to_async(UserFactory)(username="carol")
    context = await browser.new_context(base_url=server.url)
    page = await context.new_page()

    # when they open the chat, they are sent to the login page
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    await page.get_by_label("Username").fill(user.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()

    # then they land on the chat: the room list, and (in no room yet) the welcome.
    # (Not the composer: the room view shows before the script hides it for a
    # user without a room, so asserting it only raced the script.)
    await expect(page).to_have_url(re.compile(r"/(#.*)?$"))
    await expect(page.get_by_role("navigation", name="Rooms and people")).to_be_visible()
    await expect(page.get_by_text("You are not in any room yet")).to_be_visible()
    await expect(log(page)).not_to_be_visible()

    # and signing out (a POST) ends the session
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login/$"))
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login/"))
    await context.close()


async def test_wrong_password_is_explained(server, browser):
    await sync_to_async(UserFactory)(username="dave")
    context = await browser.new_context(base_url=server.url)
    page = await context.new_page()
    await page.goto("/login/")
    await page.get_by_label("Username").fill("dave")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    await context.close()


async def test_two_users_chat_both_ways_with_typing_and_receipts(pages):
    # given alice and bob, each on the page in their own browser context
    alice, bob, _room = await sync_to_async(_room_with)("alice", "bob")
    a = await pages.open(alice)
    b = await pages.open(bob)
    await expect(a.locator("#room-title")).to_have_text("General")
    await online(a)
    await online(b)

    # when alice types, bob sees her typing; it clears when she sends
    await composer(a).press_sequentially("hi b")
    await expect(b.locator("#typing-line")).to_have_text("alice is typing…")
    await composer(a).press_sequentially("ob")
    await composer(a).press("Enter")
    await expect(log(b).get_by_text("hi bob", exact=True)).to_be_visible()
    await expect(b.locator("#typing-line")).to_have_text("")

    # then bob has seen it, and alice's page says so
    await expect(a.locator("#receipt-line")).to_have_text("Seen by bob")

    # and bob answers
    await send(b, "hello alice")
    await expect(log(a).get_by_text("hello alice", exact=True)).to_be_visible()
    await expect(log(b).get_by_text("hi bob", exact=True)).to_have_count(1)
    await expect(log(a).get_by_text("hi bob", exact=True)).to_have_count(1)


async def test_typing_line_names_several_people(pages, server, clients):
    alice, bob, carol, room = await sync_to_async(_room_with)("alice", "bob", "carol")
    a = await pages.open(alice)
    await online(a)
    bob_client = await _sender(clients, server, bob, room.pk)
    carol_client = await _sender(clients, server, carol, room.pk)

    await bob_client.emit("chat:typing", {"roomId": room.pk, "isTyping": True})
    await carol_client.emit("chat:typing", {"roomId": room.pk, "isTyping": True})
    await expect(a.locator("#typing-line")).to_have_text("bob and carol are typing…")

    await bob_client.emit("chat:typing", {"roomId": room.pk, "isTyping": False})
    await expect(a.locator("#typing-line")).to_have_text("carol is typing…")


async def test_unread_badge_counts_and_clears(pages, server, clients):
    # given bob looking at general, and a second room he belongs to
    alice, bob, _general = await sync_to_async(_room_with)("alice", "bob")
    *_, random = await sync_to_async(_add_room)([alice, bob], "random", "Random")
    b = await pages.open(bob, "/#general")
    await expect(b.locator("#room-title")).to_have_text("General")
    await online(b)

    # when alice writes twice in the other room
    a = await _sender(clients, server, alice, random.pk)
    for text in ("one", "two"):
        assert (await a.call("chat:message", {"roomId": random.pk, "text": text}))["status"] == "ok"

    # then bob's sidebar counts them
    badge = b.locator('a.room-link[data-room-id="random"] .badge')
    await expect(badge).to_have_text(re.compile(r"^2\s*unread$"))

    # and opening the room clears the badge, for good (the server knows)
    await b.locator('a.room-link[data-room-id="random"]').click()
    await expect(log(b).get_by_text("two", exact=True)).to_be_visible()
    await expect(badge).to_have_count(0)
    await eventually(lambda: sync_to_async(_has_read)(bob, random.pk), what="bob's read receipt stored")
    await b.reload()
    await expect(b.locator("#room-title")).to_have_text("Random")
    await expect(b.locator(".room-link .badge")).to_have_count(0)


def _add_room(users, room_id, name):
    room = Room.objects.create(id=room_id, name=name)
    for user in users:
        add_member(room, user)
    return (*users, room)


def _has_read(user, room_id) -> bool:
    receipt = ReadReceipt.objects.filter(user=user, room_id=room_id).first()
    last = Message.objects.filter(room_id=room_id).order_by("-id").first()
    return receipt is not None and last is not None and receipt.last_read_message_id == last.pk


async def test_history_survives_reload_and_scrolls_up(pages):
    # given a room with more history than one page
    alice, bob, room = await sync_to_async(_room_with)("alice", "bob")
    await sync_to_async(_posts)(room, bob, 120)
    a = await pages.open(alice)

    # the newest messages show; scrolling up fetches older pages
    await expect(log(a).get_by_text("message 120", exact=True)).to_be_visible()
    await expect(log(a).get_by_text("message 60", exact=True)).to_have_count(0)
    for _ in range(6):
        await a.locator("#scroller").evaluate("el => el.scrollTo(0, 0)")
        if await log(a).get_by_text("message 1", exact=True).count():
            break
        await asyncio.sleep(0.4)
    await expect(log(a).get_by_text("message 1", exact=True)).to_be_attached()
    await expect(a.get_by_text("This is the very beginning of #General.", exact=False)).to_be_visible()
    await expect(a.locator(".message[data-id]")).to_have_count(120)

    # a reload shows the same history again
    await send(a, "after the scroll")
    await expect(log(a).get_by_text("after the scroll", exact=True)).to_be_visible()
    await a.reload()
    await expect(log(a).get_by_text("after the scroll", exact=True)).to_be_visible()
    await expect(log(a).get_by_text("message 120", exact=True)).to_be_visible()


def _posts(room, author, count):
    for n in range(1, count + 1):
        post(room, author, f"message {n}")


async def test_reply_by_keyboard_quotes_and_jumps_to_the_original(pages):
    alice, bob, room = await sync_to_async(_room_with)("alice", "bob")
    await sync_to_async(post)(room, bob, "the original question")
    await sync_to_async(_posts)(room, bob, 30)
    a = await pages.open(alice)
    await expect(log(a).get_by_text("message 30", exact=True)).to_be_visible()

    # keyboard only: up from the empty composer walks into the log, R replies
    await composer(a).focus()
    await a.keyboard.press("ArrowUp")
    for _ in range(30):
        await a.keyboard.press("ArrowUp")
    await expect(a.locator(".message:focus")).to_contain_text("the original question")
    await a.keyboard.press("r")
    await expect(a.locator("#reply-preview")).to_contain_text("Replying to bob")
    await expect(composer(a)).to_be_focused()
    await a.keyboard.type("my answer")
    await a.keyboard.press("Enter")

    # the reply quotes the original, and the quote jumps back to it
    reply = log(a).locator(".message", has_text="my answer")
    await expect(reply.locator(".message-quote")).to_contain_text("the original question")
    await reply.locator(".message-quote").click()
    await expect(a.locator(".message:focus")).to_contain_text("the original question")


async def test_markup_is_shown_as_text_and_links_are_safe(pages):
    alice, bob, _room = await sync_to_async(_room_with)("alice", "bob")
    a = await pages.open(alice)
    b = await pages.open(bob)
    await online(a)
    await online(b)

    evil = "<img src=x onerror=alert(1)>"
    await send(a, evil)
    await send(a, "docs at https://example.com/a_(b). and javascript:alert(2)")

    await expect(log(b).get_by_text(evil, exact=True)).to_be_visible()
    assert await log(b).locator("img").count() == 0
    link = log(b).get_by_role("link", name="https://example.com/a_(b)")
    await expect(link).to_have_attribute("href", "https://example.com/a_(b)")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert await log(b).locator('a[href^="javascript"]').count() == 0
    await asyncio.sleep(0.5)
    assert pages.dialogs == []


async def test_a_seq_jump_is_repaired_without_reload(pages, server, clients):
    # given alice on the page
    alice, bob, room = await sync_to_async(_room_with)("alice", "bob")
    a = await pages.open(alice)
    await online(a)

    # when a message is stored without its broadcast reaching her (lost in
    # transit), then the next one arrives live with a seq one too far
    await sync_to_async(post)(room, bob, "lost in transit")
    b = await _sender(clients, server, bob, room.pk)
    assert (await b.call("chat:message", {"roomId": room.pk, "text": "arrives live"}))["status"] == "ok"

    # then the page fetches what it missed, in order, each once
    await expect(log(a).get_by_text("lost in transit", exact=True)).to_have_count(1)
    await expect(log(a).get_by_text("arrives live", exact=True)).to_have_count(1)
    texts = await log(a).locator(".message-text").all_text_contents()
    assert texts == ["lost in transit", "arrives live"]


async def test_a_refused_send_is_kept_with_retry(server_factory, pages_for):
    # given a server that allows two messages per two seconds
    limited = await asyncio.to_thread(
        server_factory, "rate-limited", CHAT_RATE_LIMIT_MESSAGES="2", CHAT_RATE_LIMIT_WINDOW="2"
    )
    alice, _bob, _room = await sync_to_async(_room_with)("alice", "bob")
    pages = pages_for(limited.url)
    try:
        a = await pages.open(alice)
        await online(a)

        # when alice sends three at once
        for text in ("first", "second", "third"):
            await send(a, text)

        # then the third is kept, with the server's reason and a Retry button
        failed = log(a).locator(".message--failed", has_text="third")
        await expect(failed).to_contain_text("Not sent: You are sending too fast")
        await asyncio.sleep(2.2)
        await failed.get_by_role("button", name="Retry").click()
        await expect(log(a).locator(".message--failed")).to_have_count(0)
        await expect(log(a).locator(".message[data-id]", has_text="third")).to_have_count(1)
        assert await sync_to_async(Message.objects.filter(text="third").count)() == 1
        assert pages.errors == []
    finally:
        await pages.close()


# Two server processes (alice's, restarted, and bob's): they share messages only
# through Redis, so on the embedded defaults this test skips with the others.
@pytest.mark.redis
async def test_server_restart_under_an_open_page_loses_nothing(server_factory, server, pages_for, clients):
    # given alice's page on a server of its own, and bob on another process
    primary = await asyncio.to_thread(server_factory, "restarted")
    alice, bob, room = await sync_to_async(_room_with)("alice", "bob")
    pages = pages_for(primary.url)
    try:
        a = await pages.open(alice)
        await online(a)
        b = await _sender(clients, server, bob, room.pk)
        assert (await b.call("chat:message", {"roomId": room.pk, "text": "before"}))["status"] == "ok"
        await expect(log(a).get_by_text("before", exact=True)).to_be_visible()

        # when alice's server goes away, the page says so
        await asyncio.to_thread(primary.stop)
        await expect(a.locator("#connection-banner")).to_be_visible()
        await expect(a.locator("#connection-banner")).to_contain_text("offline")

        # and meanwhile bob writes (through the other process) and alice writes offline
        for text in ("while down 1", "while down 2"):
            assert (await b.call("chat:message", {"roomId": room.pk, "text": text}))["status"] == "ok"
        await send(a, "queued offline 1")
        await send(a, "queued offline 2")
        await expect(log(a).locator(".message--queued")).to_have_count(2)

        # then, once the server is back, everything is there, in order, once
        await asyncio.to_thread(primary.start)
        await online(a, timeout=20_000)
        for text in ("while down 1", "while down 2", "queued offline 1", "queued offline 2"):
            await expect(log(a).locator(".message[data-id]", has_text=text)).to_have_count(1)
        await expect(log(a).locator(".message--pending")).to_have_count(0)
        await b.wait_for("chat:message", lambda m: m["text"] == "queued offline 2", timeout=10)
        stored = await sync_to_async(_texts)(room)
        assert stored == ["before", "while down 1", "while down 2", "queued offline 1", "queued offline 2"]

        # and live messages flow again
        assert (await b.call("chat:message", {"roomId": room.pk, "text": "after"}))["status"] == "ok"
        await expect(log(a).get_by_text("after", exact=True)).to_have_count(1)
        texts = await log(a).locator(".message[data-id] .message-text").all_text_contents()
        assert texts == [*stored, "after"]
        assert pages.errors == []
    finally:
        await pages.close()


@pytest.mark.redis
@pytest.mark.skipif(not RedisServer.available(), reason="needs redis-server on PATH")
async def test_a_message_the_bus_dropped_is_fetched_on_sync_required(server_factory, pages_for, clients):
    # given alice's page on process A and bob on process B, sharing a private Redis
    redis = RedisServer().start()
    try:
        a_server = await asyncio.to_thread(server_factory, "page-sync-a", REDIS_URL=redis.url)
        b_server = await asyncio.to_thread(server_factory, "page-sync-b", REDIS_URL=redis.url)
        alice, bob, room = await sync_to_async(_room_with)("alice", "bob")
        pages = pages_for(a_server.url)
        a = await pages.open(alice)
        await online(a)
        b = await _sender(clients, b_server, bob, room.pk)
        assert (await b.call("chat:message", {"roomId": room.pk, "text": "before"}))["status"] == "ok"
        await expect(log(a).get_by_text("before", exact=True)).to_be_visible()

        # when bob's next message is stored while Redis is away, and nothing
        # follows it once Redis is back (no later seq to reveal the gap)
        redis.stop()
        await asyncio.sleep(1.5)
        assert (await b.call("chat:message", {"roomId": room.pk, "text": "lost in the outage"}, timeout=10))[
            "status"
        ] == "ok"
        await asyncio.sleep(1.5)
        redis.start()

        # then the page, told sync:required, fetches it
        await expect(log(a).get_by_text("lost in the outage", exact=True)).to_have_count(1, timeout=20_000)
        texts = await log(a).locator(".message[data-id] .message-text").all_text_contents()
        assert texts == ["before", "lost in the outage"]
        assert pages.errors == []
        await pages.close()
    finally:
        redis.stop()


def _texts(room) -> list[str]:
    return list(Message.objects.filter(room=room).order_by("id").values_list("text", flat=True))


async def test_create_a_room_and_start_a_direct_chat(pages):
    alice, _bob, _room = await sync_to_async(_room_with)("alice", "bob")
    a = await pages.open(alice)
    await online(a)

    # create a room from the sidebar
    await a.get_by_role("button", name="Create a room").click()
    await a.get_by_label("Name").fill("Design reviews")
    await a.get_by_role("button", name="Create", exact=True).click()
    await expect(a.locator("#room-title")).to_have_text("Design reviews")
    await send(a, "first in the new room")
    await expect(log(a).locator(".message[data-id]", has_text="first in the new room")).to_have_count(1)

    # find bob in the directory and start a 1:1 chat
    await a.get_by_role("button", name="Start a direct message").click()
    await a.get_by_label("Find people").fill("bo")
    await a.get_by_role("button", name="bob").click()
    await expect(a.locator("#room-title")).to_have_text("bob")
    await expect(a.get_by_role("navigation").get_by_role("link", name=re.compile("bob"))).to_be_visible()


async def test_phone_width_shows_one_pane_at_a_time(pages):
    alice, _bob, _room = await sync_to_async(_room_with)("alice", "bob")
    a = await pages.open(alice, viewport=PHONE)
    await expect(composer(a)).to_be_visible()
    await expect(a.get_by_role("navigation")).to_be_hidden()
    await a.get_by_role("button", name="Back to rooms").click()
    await expect(a.get_by_role("navigation")).to_be_visible()
    await a.get_by_role("link", name="General").click()
    await expect(composer(a)).to_be_visible()
    overflow = await a.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow == 0


async def test_text_helpers(pages):
    alice, _bob, _room = await sync_to_async(_room_with)("alice", "bob")
    a = await pages.open(alice)
    results = await a.evaluate(
        """async () => {
            const t = await import("/static/chat/text.js");
            const links = (text) => [...t.linkify(text).childNodes]
                .filter((n) => n.nodeName === "A").map((n) => [n.textContent, n.getAttribute("href"), n.rel]);
            return {
                typing: [[], ["bob"], ["carol", "bob"], ["bob", "carol", "dave"], ["a", "b", "c", "d"]]
                    .map(t.typingText),
                seen: t.joinNames(["bob", "carol", "dave", "erin", "fred"]),
                plain: links("javascript:alert(1) data:text/html,x ftp://x.org <b>https</b>"),
                trailing: links("see https://example.com/x. and (https://example.com/y) or https://w.org/A_(b)!"),
                quotes: links('"https://example.com/q"'),
                text: t.linkify("<img src=x onerror=alert(1)> https://a.org").textContent,
            };
        }"""
    )
    assert results["typing"] == [
        "",
        "bob is typing…",
        "bob and carol are typing…",
        "bob, carol and dave are typing…",
        "Several people are typing…",
    ]
    assert results["seen"] == "bob, carol and 3 others"
    assert results["plain"] == []
    noopener = "noopener noreferrer"
    assert results["trailing"] == [
        ["https://example.com/x", "https://example.com/x", noopener],
        ["https://example.com/y", "https://example.com/y", noopener],
        ["https://w.org/A_(b)", "https://w.org/A_(b)", noopener],
    ]
    assert results["quotes"] == [["https://example.com/q", "https://example.com/q", noopener]]
    assert results["text"] == "<img src=x onerror=alert(1)> https://a.org"
