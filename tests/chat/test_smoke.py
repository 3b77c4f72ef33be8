"""The smallest end-to-end check, also run on the embedded defaults."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message, Room
from tests.conftest import token_for
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_send_reaches_another_member_and_is_stored(server, clients, transport):
    # given two members of a room
    alice, bob, room = await sync_to_async(_setup)()
    a = await clients().connect(server.url, token=token_for(alice), transport=transport)
    b = await clients().connect(server.url, token=token_for(bob), transport=transport)
    assert (await a.call("room:join", room.pk))["status"] == "ok"
    assert (await b.call("room:join", room.pk))["status"] == "ok"

    # when alice sends
    ack = await a.call("chat:message", {"roomId": room.pk, "text": "  hello bob  ", "clientId": "c-1"})

    # then the ack names the stored message and bob receives it
    assert ack["status"] == "ok"
    received = await b.wait_for("chat:message", lambda m: m["id"] == ack["messageId"])
    assert received["text"] == "hello bob"
    assert received["seq"] == 1
    stored = await sync_to_async(Message.objects.get)(pk=int(ack["messageId"]))
    assert stored.text == "hello bob"


def _setup():
    alice, bob = UserFactory(), UserFactory()
    room = Room.objects.create(id="smoke", name="Smoke")
    add_member(room, alice)
    add_member(room, bob)
    return alice, bob, room
