"""One rule, one home: the socket send's two paths answer one table of cases alike.

On PostgreSQL a socket send is stored by the batch statement of
chat/message_writer.py (STORE_BATCH); CHAT_SEND_PATH=orm forces
services.message_send (after access.access_room_for_send), the path of REST,
SQLite and slow mode. Each case below is set up twice, once per path, and sent
through message_writer.message_send; both must answer the same code and the
same words, and store with the same clock (the app's, here frozen an hour
ahead of the database's, so a clock of the database would show).

(Empty or too long texts are refused by chat/schemas.py before either path.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from chat import message_writer, services
from chat.errors import ChatError
from chat.models import Message, Room, RoomBan, RoomMute
from chat.ratelimit import rate_limit_hit
from chatsite import pg
from tests.factories import UserFactory, add_member, post

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not pg.available(), reason="the batch statement runs on PostgreSQL only (DATABASE_URL)"),
]

# The app's clock during these tests: an hour ahead of the database's.
REAL_NOW = timezone.now()
FROZEN = REAL_NOW + timedelta(hours=1)


@dataclass
class Send:
    sender: User
    room_id: str
    text: str = "hi"
    reply_to_id: int | None = None
    client_id: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _room(room_id: str, *, members: list[User], **fields: Any) -> Room:
    room = Room.objects.create(id=room_id, name=room_id, **fields)
    for member in members:
        add_member(room, member)
    return room


def _user() -> User:
    return UserFactory(password=None)


# --- the cases: each sets up its world under `tag` (one per path) ---------------


def ok(tag: str) -> Send:
    ann = _user()
    _room(f"ok-{tag}", members=[ann])
    return Send(ann, f"ok-{tag}", "hello")


def ok_reply(tag: str) -> Send:
    ann, ben = _user(), _user()
    room = _room(f"reply-{tag}", members=[ann, ben])
    question = post(room, ben, "question?")
    return Send(ann, room.pk, "answer", reply_to_id=question.pk)


def unknown_room(tag: str) -> Send:
    return Send(_user(), "no-such-room")


def not_a_member(tag: str) -> Send:
    _room(f"public-{tag}", members=[_user()])
    return Send(_user(), f"public-{tag}")


def private_room(tag: str) -> Send:
    _room(f"private-{tag}", members=[_user()], visibility=Room.Visibility.PRIVATE)
    return Send(_user(), f"private-{tag}")


def direct_room_of_others(tag: str) -> Send:
    room, _ = services.room_get_or_create_direct(user=_user(), other=_user())
    return Send(_user(), room.pk)


def banned(tag: str) -> Send:
    eve = _user()
    room = _room(f"banned-{tag}", members=[_user()])
    RoomBan.objects.create(room=room, user=eve)
    return Send(eve, room.pk)


def banned_from_private(tag: str) -> Send:
    eve = _user()
    room = _room(f"banned-private-{tag}", members=[_user()], visibility=Room.Visibility.PRIVATE)
    RoomBan.objects.create(room=room, user=eve)
    return Send(eve, room.pk)


def muted(tag: str) -> Send:
    dan = _user()
    room = _room(f"muted-{tag}", members=[dan])
    RoomMute.objects.create(room=room, user=dan, until=FROZEN + timedelta(minutes=30))
    return Send(dan, room.pk)


def mute_over_by_the_app_clock(tag: str) -> Send:
    # Still running by the database's clock, over by the app's.
    dan = _user()
    room = _room(f"mute-over-{tag}", members=[dan])
    RoomMute.objects.create(room=room, user=dan, until=REAL_NOW + timedelta(minutes=30))
    return Send(dan, room.pk)


def reply_to_another_room(tag: str) -> Send:
    ann = _user()
    _room(f"here-{tag}", members=[ann])
    elsewhere = post(_room(f"there-{tag}", members=[ann]), ann, "elsewhere")
    return Send(ann, f"here-{tag}", reply_to_id=elsewhere.pk)


def reply_to_unknown(tag: str) -> Send:
    ann = _user()
    _room(f"unknown-reply-{tag}", members=[ann])
    return Send(ann, f"unknown-reply-{tag}", reply_to_id=10**12)


def client_id_resend(tag: str) -> Send:
    ann = _user()
    room = _room(f"resend-{tag}", members=[ann])
    post(room, ann, "first", client_id=f"c-{tag}")
    return Send(ann, room.pk, "first", client_id=f"c-{tag}")


def client_id_of_another_room(tag: str) -> Send:
    ann = _user()
    _room(f"here-c-{tag}", members=[ann])
    post(_room(f"there-c-{tag}", members=[ann]), ann, "elsewhere", client_id=f"c-{tag}")
    return Send(ann, f"here-c-{tag}", client_id=f"c-{tag}")


def rate_limited(tag: str) -> Send:
    ann = _user()
    _room(f"limited-{tag}", members=[ann])
    with override_settings(CHAT_RATE_LIMIT_MESSAGES=1):
        assert rate_limit_hit(user_id=int(ann.pk)).allowed
    return Send(ann, f"limited-{tag}", settings={"CHAT_RATE_LIMIT_MESSAGES": 1})


def slow_mode(tag: str) -> Send:
    ann = _user()
    room = _room(f"slow-{tag}", members=[ann], slow_mode_seconds=30)
    post(room, ann, "a moment ago")
    return Send(ann, room.pk)


def inactive_author(tag: str) -> Send:
    # The sender as a socket holds it: loaded active at the handshake,
    # deactivated since.
    ann = _user()
    _room(f"inactive-{tag}", members=[ann])
    User.objects.filter(pk=ann.pk).update(is_active=False)
    return Send(ann, f"inactive-{tag}")


# Each case and the answer both paths must give (code, then words; None: any).
CASES: dict[str, tuple[Callable[[str], Send], tuple[str, str | None]]] = {
    "ok": (ok, ("ok", "new")),
    "ok, a reply": (ok_reply, ("ok", "new")),
    "unknown room": (unknown_room, ("not_found", "Room 'no-such-room' does not exist")),
    "not a member of a public room": (not_a_member, ("forbidden", "Join the room before sending to it")),
    "private room": (private_room, ("forbidden", "This room is private")),
    "someone else's 1:1 room": (direct_room_of_others, ("forbidden", "This room is private")),
    "banned": (banned, ("banned", "You are banned from this room")),
    "banned from a private room": (banned_from_private, ("banned", "You are banned from this room")),
    "muted": (
        muted,
        ("muted", f"You are muted in this room until {FROZEN + timedelta(minutes=30):%Y-%m-%d %H:%M} UTC"),
    ),
    "mute over by the app's clock": (mute_over_by_the_app_clock, ("ok", "new")),
    "replyTo of another room": (reply_to_another_room, ("not_found", "replyTo does not name a message of this room")),
    "replyTo unknown": (reply_to_unknown, ("not_found", "replyTo does not name a message of this room")),
    "clientId resend, same room": (client_id_resend, ("ok", "resend")),
    "clientId of another room": (
        client_id_of_another_room,
        ("invalid", "clientId was already used for a message in another room"),
    ),
    "rate limited": (rate_limited, ("rate_limited", None)),
    "slow mode": (slow_mode, ("rate_limited", "Slow mode is on: you can send again in 30 s")),
    "inactive author": (inactive_author, ("forbidden", "This account is deactivated")),
}


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: FROZEN)
    return FROZEN


@pytest.fixture(autouse=True)
async def _close_the_pool():
    yield
    await pg.close()


async def _through(path: str, case: Callable[[str], Send]) -> dict[str, Any]:
    send = await sync_to_async(case)(path)
    with override_settings(**{"CHAT_SEND_PATH": path, "CHAT_RATE_LIMIT_MESSAGES": 1000, **send.settings}):
        try:
            outcome: services.SendResult | ChatError = await message_writer.message_send(
                sender=send.sender,
                room_id=send.room_id,
                text=send.text,
                reply_to_id=send.reply_to_id,
                client_id=send.client_id,
                sid=f"sid-{path}",
            )
        except ChatError as error:
            outcome = error
    if isinstance(outcome, ChatError):
        return {"answer": (outcome.code.value, outcome.message)}
    message = outcome.message
    stored = await sync_to_async(Message.objects.get)(pk=message.pk)
    return {
        "answer": ("ok", "new" if outcome.created else "resend"),
        "seq": message.seq,
        "stored": (stored.seq, stored.text, stored.reply_to_id is not None, stored.created_at),
        # The clock of the answer, too (a resend answers with the stored message).
        "created_at": message.created_at if outcome.created else stored.created_at,
    }


@pytest.mark.parametrize("name", list(CASES))
async def test_the_batch_statement_and_the_orm_service_answer_alike(
    name, frozen_clock, broadcasted, statements, monkeypatch
):
    case, expected = CASES[name]

    # when the case is sent through the batch statement, then through the ORM
    auto = await _through("auto", case)
    statements_of_auto = list(statements)
    broadcast_of_auto = list(broadcasted)
    orm = await _through("orm", case)

    # then the batch statement answered the socket path (slow mode hands over
    # to the ORM from there; a send over the rate limit goes to the ORM before
    # it), and the forced ORM path never used it
    assert statements_of_auto == ([] if name == "rate limited" else [1])
    assert statements == statements_of_auto
    # and both gave the expected code and the same words
    code, words = expected
    assert auto["answer"][0] == code, auto
    if words is not None:
        assert auto["answer"][1] == words
    if code == "rate_limited" and words is None:
        # The seconds to wait are Redis's clock at each refusal.
        auto["answer"] = (code, re.sub(r"[\d.]+ s$", "N s", auto["answer"][1]))
        orm["answer"] = (code, re.sub(r"[\d.]+ s$", "N s", orm["answer"][1]))
    assert auto == orm
    if code == "ok":
        # and both took created_at from the app's clock
        assert auto["created_at"] == orm["created_at"] == frozen_clock
        assert auto["stored"][3] == frozen_clock
    if expected == ("ok", "new"):
        # and broadcast the same message
        assert len(broadcast_of_auto) == 1 and len(broadcasted) == 2
        keep = ("seq", "text", "timestamp")
        assert {k: broadcasted[0][k] for k in keep} == {k: broadcasted[1][k] for k in keep}
        assert (broadcasted[0]["reply"] is None) == (broadcasted[1]["reply"] is None)
    else:
        assert broadcasted == []
