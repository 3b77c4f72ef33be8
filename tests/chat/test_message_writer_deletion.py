"""chat/message_writer.py and deletions: a soft-deleted room is not_found in
the batch statement too (also when it is deleted while the batch waits for its
lock), and a reply to a message of a deleted account quotes the placeholder."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from chat.models import Message, Room, RoomBan
from chatsite import pg
from tests.chat.test_message_writer import _answer, _close_the_pool, _room, _send, _until_a_session_waits_for_a_lock
from tests.factories import UserFactory, post

__all__ = ["_close_the_pool"]

pytestmark = pytest.mark.django_db(transaction=True)


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_deleted_room_is_not_found_and_a_deleted_author_is_a_placeholder(broadcasted):
    # given a deleted room, and a room where a deleted account wrote a message
    @sync_to_async
    def given() -> tuple[User, User, Message]:
        ann, ben, gone = UserFactory(password=None), UserFactory(password=None), UserFactory(password=None)
        deleted = _room("w-soft-deleted", members=[ann])
        post(deleted, ann, "sent before", client_id="ann-before")
        RoomBan.objects.create(room=deleted, user=ben)
        Room.objects.filter(pk="w-soft-deleted").update(deleted_at=timezone.now())
        general = _room("w-authors", members=[ann, gone])
        message = post(general, gone, "from a deleted account")
        gone.delete()
        return ann, ben, message

    ann, ben, orphan = await given()

    # when one batch sends into both (a resend and a banned user's send
    # into the deleted room too: not_found outranks both, as in access_room)
    answers = await asyncio.gather(
        _send(ann, "w-soft-deleted", "into the void"),
        _send(ann, "w-soft-deleted", "sent before", client_id="ann-before"),
        _send(ben, "w-soft-deleted", "let me in"),
        _send(ann, "w-authors", "a reply", reply_to_id=orphan.pk),
    )

    # then the deleted room is not_found, and the reply quotes the placeholder
    assert [_answer(a) for a in answers] == [
        ("error", "not_found", "Room 'w-soft-deleted' does not exist"),
        ("error", "not_found", "Room 'w-soft-deleted' does not exist"),
        ("error", "not_found", "Room 'w-soft-deleted' does not exist"),
        ("ok", "w-authors", "2", "new"),
    ]
    assert [p["text"] for p in broadcasted] == ["a reply"]
    assert broadcasted[0]["reply"] == {
        "id": str(orphan.pk),
        "userId": "",
        "username": "Deleted user",
        "text": "from a deleted account",
    }
    assert await sync_to_async(Message.objects.filter(room_id="w-soft-deleted").count)() == 1


@pytest.mark.skipif(not pg.available(), reason="the writer's statement runs on PostgreSQL only")
@override_settings(CHAT_RATE_LIMIT_MESSAGES=1000)
async def test_a_room_soft_deleted_while_the_batch_waits_for_its_lock_is_not_found(broadcasted):
    ann = await sync_to_async(UserFactory)(password=None)
    await sync_to_async(_room)("w-soft-doomed", members=[ann])

    # given another session holding the room's row lock (as room_delete does)
    async with await psycopg.AsyncConnection.connect(**pg._connect_kwargs()) as other:
        other_pid = other.info.backend_pid
        await other.set_autocommit(False)
        await other.execute("SELECT 1 FROM chat_room WHERE id = 'w-soft-doomed' FOR UPDATE")

        # when a send waits for that lock, and the other session soft-deletes the room
        send = asyncio.ensure_future(_send(ann, "w-soft-doomed", "into the void"))
        await _until_a_session_waits_for_a_lock(other_pid)
        await other.execute("UPDATE chat_room SET deleted_at = now() WHERE id = 'w-soft-doomed'")
        await other.commit()

        # then the send is answered not_found, and nothing was stored or announced
        assert _answer(await send) == ("error", "not_found", "Room 'w-soft-doomed' does not exist")
    assert await sync_to_async(Message.objects.filter(room_id="w-soft-doomed").count)() == 0
    assert broadcasted == []
