"""chat/message_writer.py in-process: a whole batch of sends, stored by one
statement on PostgreSQL, answers each send as services.message_send would.

(The wire is tested in tests/chat/sockets/; this drives the writer directly so
one batch can hold every case at once.)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from chat import message_writer, services
from chat.errors import ChatError
from chat.models import Message, Room, RoomBan, RoomMute
from chatsite import pg
from tests.factories import UserFactory, add_member, post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_pool():
    """Each test runs its own event loop; its pool goes with it."""
    yield
    if pg.available():
        await pg.close()


def _room(room_id: str, *, members: list[User], **fields: Any) -> Room:
    room = Room.objects.create(id=room_id, name=room_id, **fields)
    for member in members:
        add_member(room, member)
    return room


async def _send(user: User, room_id: str, text: str = "hi", **fields: Any) -> services.SendResult | ChatError:
    try:
        return await message_writer.message_send(
            sender=user,
            room_id=room_id,
            text=text,
            reply_to_id=fields.get("reply_to_id"),
            client_id=fields.get("client_id"),
            sid="sid-of-test",
        )
    except ChatError as error:
        return error


def _answer(outcome: services.SendResult | ChatError) -> tuple[str, ...]:
    if isinstance(outcome, ChatError):
        return ("error", outcome.code, outcome.message)
    return ("ok", outcome.message.room_id, str(outcome.message.seq), "new" if outcome.created else "resend")


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_one_batch_answers_every_case_as_message_send_would(broadcasted, statements):
    # given members, outsiders, a banned and a muted user, and three rooms
    @sync_to_async
    def given() -> dict[str, Any]:
        ann, ben, cat, dan, eve, fay = (UserFactory(password=None) for _ in range(6))
        general = _room("w-general", members=[ann, cat, dan, fay])
        _room("w-second", members=[ann])
        _room("w-private", members=[ann], visibility=Room.Visibility.PRIVATE)
        RoomBan.objects.create(room=general, user=eve)
        RoomMute.objects.create(room=general, user=dan, until=timezone.now() + timedelta(minutes=5))
        elsewhere = post(Room.objects.get(pk="w-second"), ann, "elsewhere", client_id="used-in-second")
        question = post(general, cat, "question?")
        return {"users": (ann, ben, cat, dan, eve, fay), "elsewhere": elsewhere, "question": question}

    data = await given()
    ann, ben, cat, dan, eve, fay = data["users"]

    # when all of these arrive at once
    sends = [
        _send(ann, "w-general", "one", client_id="ann-1"),
        _send(ben, "w-general"),  # public room, not a member
        _send(ben, "w-private"),  # private room, not a member
        _send(eve, "w-general"),  # banned
        _send(dan, "w-general"),  # muted
        _send(ann, "no-such-room"),
        _send(cat, "w-general", "answer", reply_to_id=data["question"].pk),
        _send(fay, "w-general", reply_to_id=data["elsewhere"].pk),  # a reply into another room
        _send(ann, "w-general", client_id="used-in-second"),  # a clientId of another room
        _send(ann, "w-second", "two"),
        _send(ann, "w-general", "three"),
    ]
    answers = [_answer(outcome) for outcome in await asyncio.gather(*sends)]

    # then each got message_send's answer
    muted_until = (await sync_to_async(RoomMute.objects.get)(user=dan)).until
    assert answers == [
        ("ok", "w-general", "2", "new"),
        ("error", "forbidden", "Join the room before sending to it"),
        ("error", "forbidden", "This room is private"),
        ("error", "banned", "You are banned from this room"),
        ("error", "muted", f"You are muted in this room until {muted_until:%Y-%m-%d %H:%M} UTC"),
        ("error", "not_found", "Room 'no-such-room' does not exist"),
        ("ok", "w-general", "3", "new"),
        ("error", "not_found", "replyTo does not name a message of this room"),
        ("error", "invalid", "clientId was already used for a message in another room"),
        ("ok", "w-second", "2", "new"),
        ("ok", "w-general", "4", "new"),
    ]
    # and on PostgreSQL all of it was one statement
    if connection.vendor == "postgresql":
        assert statements == [len(sends)]
    # and the new messages were broadcast in seq order, the reply with its preview
    assert [(p["roomId"], p["seq"], p["text"]) for p in broadcasted] == [
        ("w-general", 2, "one"),
        ("w-general", 3, "answer"),
        ("w-second", 2, "two"),
        ("w-general", 4, "three"),
    ]
    reply = broadcasted[1]
    assert reply["reply"] == {
        "id": str(data["question"].pk),
        "userId": str(cat.pk),
        "username": cat.username,
        "text": "question?",
    }
    assert reply["readBy"] == [str(cat.pk)] and reply["timestamp"].endswith("Z")
    # and what was stored matches, ids in seq order
    stored = await sync_to_async(list)(Message.objects.filter(room_id="w-general").order_by("id"))
    assert [(m.seq, m.text) for m in stored] == [(1, "question?"), (2, "one"), (3, "answer"), (4, "three")]
    assert (await sync_to_async(Room.objects.get)(pk="w-general")).last_seq == 4


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_client_id_twice_in_one_batch_is_one_message(broadcasted, statements):
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-twice", members=[ann])

    first, again, other = await asyncio.gather(
        _send(ann, "w-twice", "once", client_id="dup"),
        _send(ann, "w-twice", "once", client_id="dup"),
        _send(ann, "w-twice", "other"),
    )

    assert _answer(first) == ("ok", "w-twice", "1", "new")
    assert _answer(again) == ("ok", "w-twice", "1", "resend")
    assert _answer(other) == ("ok", "w-twice", "2", "new")
    assert [p["text"] for p in broadcasted] == ["once", "other"]
    if connection.vendor == "postgresql":
        # the batch hit the unique index and was stored send by send
        assert statements == [3, 1, 1, 1]


@override_settings(CHAT_RATE_LIMIT_MESSAGES=2)
async def test_only_new_messages_count_against_the_rate_limit(broadcasted):
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-limit", members=[ann])
    await sync_to_async(_room)("w-outside", members=[])
    await sync_to_async(Room.objects.filter(pk="w-outside").update)(visibility=Room.Visibility.PRIVATE)

    # refused sends and resends are given back
    assert _answer(await _send(ann, "w-outside"))[1] == "forbidden"
    assert _answer(await _send(ann, "w-limit", client_id="c1"))[0] == "ok"
    assert _answer(await _send(ann, "w-limit", client_id="c1"))[3] == "resend"
    assert _answer(await _send(ann, "w-limit"))[0] == "ok"
    # so the limit of two is reached by the two new messages only
    over = await _send(ann, "w-limit")
    assert isinstance(over, ChatError) and over.code == "rate_limited"
    # and past the limit a refusal that comes first still wins, and a resend still answers
    assert _answer(await _send(ann, "w-outside"))[1] == "forbidden"
    assert _answer(await _send(ann, "w-limit", client_id="c1"))[:3] == ("ok", "w-limit", "1")


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_slow_mode_rooms_go_through_the_orm_service(broadcasted):
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-slow", members=[ann], slow_mode_seconds=30)

    assert _answer(await _send(ann, "w-slow", "first"))[:3] == ("ok", "w-slow", "1")
    refused = await _send(ann, "w-slow", "too soon")
    assert isinstance(refused, ChatError) and refused.code == "rate_limited" and "Slow mode" in refused.message
    assert await sync_to_async(Message.objects.filter(room_id="w-slow").count)() == 1


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_more_cases_in_one_batch(broadcasted):
    # given a private room with a banned former member, a direct room, an
    # expired mute, and a deleted message to reply to
    @sync_to_async
    def given() -> dict[str, Any]:
        ann, ben, cat = (UserFactory(password=None) for _ in range(3))
        private = _room("w-private-2", members=[ann], visibility=Room.Visibility.PRIVATE)
        RoomBan.objects.create(room=private, user=ben)
        direct, _ = services.room_get_or_create_direct(user=ann, other=cat)
        general = _room("w-general-2", members=[ann, cat])
        RoomMute.objects.create(room=general, user=cat, until=timezone.now() - timedelta(seconds=1))
        gone = post(general, ann, "regretted", client_id="ann-gone")
        Message.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
        return {"users": (ann, ben, cat), "direct": direct.pk, "gone": gone}

    data = await given()
    ann, ben, cat = data["users"]

    answers = [
        _answer(outcome)
        for outcome in await asyncio.gather(
            _send(ben, "w-private-2"),  # banned outranks "private"
            _send(ben, data["direct"]),  # someone else's 1:1 room
            _send(cat, "w-general-2", "free again"),  # the mute expired
            _send(cat, "w-general-2", "re", reply_to_id=data["gone"].pk),  # a reply to a deleted message
            _send(ann, "w-general-2", client_id="ann-gone", reply_to_id=10**12),  # a resend wins over its replyTo
        )
    ]

    assert answers == [
        ("error", "banned", "You are banned from this room"),
        ("error", "forbidden", "This room is private"),
        ("ok", "w-general-2", "2", "new"),
        ("ok", "w-general-2", "3", "new"),
        ("ok", "w-general-2", "1", "resend"),
    ]
    reply = next(p for p in broadcasted if p["text"] == "re")
    assert reply["reply"] == {"id": str(data["gone"].pk), "userId": str(ann.pk), "username": ann.username, "text": ""}


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_cancelled_send_does_not_fail_the_others_of_its_batch(broadcasted):
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-cancel", members=[ann])

    first = asyncio.ensure_future(_send(ann, "w-cancel", "given up"))
    others = [asyncio.ensure_future(_send(ann, "w-cancel", text)) for text in ("two", "three")]
    await asyncio.sleep(0)  # all three are queued for the writer
    first.cancel()

    assert [_answer(await task)[0] for task in others] == ["ok", "ok"]
    if pg.available():
        # the cancelled send was stored all the same (it was in the batch), and announced
        assert sorted(p["text"] for p in broadcasted) == ["given up", "three", "two"]


@pytest.mark.skipif(not pg.available(), reason="the writer's statement runs on PostgreSQL only")
@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_room_deleted_while_the_batch_waits_for_its_lock_is_not_found(broadcasted):
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-doomed", members=[ann])

    # given another session holding the room's row lock
    async with await psycopg.AsyncConnection.connect(**pg._connect_kwargs()) as other:
        other_pid = other.info.backend_pid
        await other.set_autocommit(False)
        await other.execute("SELECT 1 FROM chat_room WHERE id = 'w-doomed' FOR UPDATE")

        # when a send waits for that lock, and the other session deletes the room
        send = asyncio.ensure_future(_send(ann, "w-doomed", "into the void"))
        await _until_a_session_waits_for_a_lock(other_pid)
        await other.execute("DELETE FROM chat_membership WHERE room_id = 'w-doomed'")
        await other.execute("DELETE FROM chat_room WHERE id = 'w-doomed'")
        await other.commit()

        # then the send is answered not_found, and nothing was stored or announced
        assert _answer(await send) == ("error", "not_found", "Room 'w-doomed' does not exist")
    assert await sync_to_async(Message.objects.filter(room_id="w-doomed").count)() == 0
    assert broadcasted == []


@pytest.mark.skipif(not pg.available(), reason="the writer's statement runs on PostgreSQL only")
@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_batch_that_committed_is_broadcast_when_the_refunds_fail_after_the_commit(
    broadcasted, statements, monkeypatch
):
    # given the step after the commit failing (giving back the quota of the
    # refused sends: Redis, or a bug)
    async def broken_refund(sends: list[Any]) -> None:
        raise RuntimeError("injected after the commit")

    monkeypatch.setattr(message_writer, "_refund", broken_refund)
    ann, ben = await sync_to_async(lambda: (UserFactory(password=None), UserFactory(password=None)))()
    await sync_to_async(_room)("w-after-commit", members=[ann])

    # when one batch stores two messages and refuses a third
    answers = await asyncio.gather(
        _send(ann, "w-after-commit", "one"),
        _send(ben, "w-after-commit", "refused"),
        _send(ann, "w-after-commit", "two"),
        return_exceptions=True,
    )

    # then it was one statement, and both stored messages were broadcast anyway
    assert statements == [3]
    assert [(p["seq"], p["text"]) for p in broadcasted] == [(1, "one"), (2, "two")]
    # and their senders were told they are stored
    assert _answer(answers[0]) == ("ok", "w-after-commit", "1", "new")
    assert _answer(answers[2]) == ("ok", "w-after-commit", "2", "new")


@pytest.mark.skipif(not pg.available(), reason="the writer's statement runs on PostgreSQL only")
@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_send_whose_row_cannot_be_read_does_not_keep_the_others_from_their_broadcast(
    broadcasted, statements, monkeypatch
):
    # given reading the statement's first row failing (a bug after the commit)
    real = message_writer._outcome

    def failing_first(send: Any, row: tuple[Any, ...]) -> Any:
        if send.text == "unreadable":
            raise RuntimeError("injected after the commit")
        return real(send, row)

    monkeypatch.setattr(message_writer, "_outcome", failing_first)
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-unreadable", members=[ann])

    # when one batch stores both
    first, second = await asyncio.gather(
        _send(ann, "w-unreadable", "unreadable"), _send(ann, "w-unreadable", "fine"), return_exceptions=True
    )

    # then the other message was broadcast and acknowledged, and the failed one answered with an error
    assert statements == [2]
    assert [(p["seq"], p["text"]) for p in broadcasted] == [(2, "fine")]
    assert _answer(second) == ("ok", "w-unreadable", "2", "new")
    assert isinstance(first, RuntimeError)


async def _until_a_session_waits_for_a_lock(holder_pid: int) -> None:
    """Until some session other than `holder_pid` waits for a lock (the send's
    statement queued behind the holder's row lock), or about two seconds."""
    async with pg.connection() as watcher:
        for _ in range(200):
            row = await (
                await watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> %s", [holder_pid])
            ).fetchone()
            if row and row[0]:
                return
            await asyncio.sleep(0.01)
