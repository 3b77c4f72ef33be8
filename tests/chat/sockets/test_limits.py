"""Every client event bounded (issue 9, point 3): per-user limits on each event,
a cap on events in flight per socket, caps on open sockets per user and per
client address. Real server processes with low limits."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import socketio
from asgiref.sync import sync_to_async

from chat.models import Membership, ReadReceipt, Room
from chat.sockets import capacity
from chat.sockets.server import EVENT_BUCKETS, IN_FLIGHT_MESSAGE, sio
from tests.chat.sockets.conftest import joined, make_room, make_users
from tests.conftest import SESSION_PREFIX, token_for
from tests.support.clients import NAMESPACE

LIMIT = 3


def _payload(event: str, room: Room, message_id: str) -> Any:
    return {
        "room:join": room.pk,
        "room:leave": room.pk,
        "chat:typing": {"roomId": room.pk, "isTyping": True},
        "chat:read": {"roomId": room.pk, "messageId": message_id},
        "presence:away": None,
        "presence:active": None,
    }[event]


LIMITED = {
    "room:join": "CHAT_RATE_LIMIT_JOINS",
    "room:leave": "CHAT_RATE_LIMIT_LEAVES",
    "chat:typing": "CHAT_RATE_LIMIT_TYPING",
    "chat:read": "CHAT_RATE_LIMIT_READS",
    "presence:away": "CHAT_RATE_LIMIT_PRESENCE",
    "presence:active": "CHAT_RATE_LIMIT_PRESENCE",
}


def test_every_client_event_of_chat_has_a_bucket():
    import chat.sockets.handlers  # noqa: F401  (registers the events)
    import presence.sockets  # noqa: F401

    registered = set(sio.handlers[NAMESPACE]) - {"connect", "disconnect"}
    assert registered == set(EVENT_BUCKETS)
    assert {event for event, bucket in EVENT_BUCKETS.items() if bucket} == set(LIMITED)


async def _limited_event(event: str, first, second, clients) -> None:
    """LIMIT events of the user are admitted across both sockets, the next is refused."""
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    setup = await clients().connect(first.url, token=token_for(bob))
    await joined(setup, room)
    message = await setup.call("chat:message", {"roomId": room.pk, "text": "read me"})
    a1 = await clients().connect(first.url, token=token_for(alice))
    a2 = await clients().connect(second.url, token=token_for(alice))
    if event in ("room:leave", "chat:typing", "chat:read"):
        # (the join that makes these meaningful is counted in its own bucket)
        await joined(a1, room)
        await joined(a2, room)
    payload = _payload(event, room, message["messageId"])

    acks = [await (a1 if i % 2 else a2).call(event, payload) for i in range(LIMIT)]
    assert all(ack["status"] == "ok" for ack in acks), acks
    refused = await a1.call(event, payload)
    assert refused["status"] == "error" and refused["code"] == "rate_limited", refused
    assert "too fast" in refused["error"]
    # another user is not affected
    assert (await setup.call(event, payload))["status"] == "ok"


@pytest.mark.parametrize("event", sorted(LIMITED))
async def test_each_event_has_a_per_user_limit(server_factory, clients, event):
    process = server_factory("limits", **{LIMITED[event]: str(LIMIT)})
    await _limited_event(event, process, process, clients)


@pytest.mark.redis
@pytest.mark.parametrize("event", ["room:join", "chat:typing", "presence:away"])
async def test_the_per_user_limit_is_shared_by_every_process(server_factory, clients, event):
    env = {LIMITED[event]: str(LIMIT)}
    first, second = server_factory("limits-a", **env), server_factory("limits-b", **env)
    await _limited_event(event, first, second, clients)


async def test_an_event_over_the_limit_touches_nothing(server_factory, clients):
    # given alice allowed one join and one read per window
    process = server_factory("limits", CHAT_RATE_LIMIT_JOINS="1", CHAT_RATE_LIMIT_READS="1")
    alice, bob = await make_users(2)
    first, second = await make_room(members=[bob]), await make_room(members=[alice, bob])
    b = await clients().connect(process.url, token=token_for(bob))
    await joined(b, second)
    ids = [(await b.call("chat:message", {"roomId": second.pk, "text": f"m{i}"}))["messageId"] for i in range(2)]
    a = await clients().connect(process.url, token=token_for(alice))
    assert (await a.call("chat:read", {"roomId": second.pk, "messageId": ids[0]}))["status"] == "ok"
    await joined(a, second)

    # when she joins a public room and reads on, over the limits
    join = await a.call("room:join", first.pk)
    read = await a.call("chat:read", {"roomId": second.pk, "messageId": ids[1]})

    # then both are refused, and neither reached the database: no membership,
    # no watermark moved, no receipt or user-joined told to anyone
    assert (join["code"], read["code"]) == ("rate_limited", "rate_limited")
    assert not await sync_to_async(Membership.objects.filter(user=alice, room=first).exists)()
    receipt = await sync_to_async(ReadReceipt.objects.get)(user=alice, room=second)
    assert str(receipt.last_read_message_id) == ids[0]
    await b.assert_no("chat:read", lambda e: e["messageId"] == ids[1], wait=0.3)
    await b.assert_no("room:user-joined", lambda e: e["roomId"] == first.pk, wait=0)


async def test_events_in_flight_per_socket_are_capped(server_factory, clients):
    # given a socket allowed 2 events in flight (and no per-user limit to speak of)
    process = server_factory("in-flight", CHAT_MAX_EVENTS_IN_FLIGHT="2", CHAT_RATE_LIMIT_JOINS="100000")
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    client = await clients().connect(process.url, token=token_for(alice))

    # when it sends 200 joins at once (each waits for the database)
    acks = await asyncio.gather(*(client.call("room:join", room.pk, timeout=30) for _ in range(200)))

    # then those past the cap are answered rate_limited at once, without running
    refused = [ack for ack in acks if ack["status"] == "error"]
    assert all(ack == {"status": "error", "code": "rate_limited", "error": IN_FLIGHT_MESSAGE} for ack in refused)
    assert len(refused) >= 20, f"{len(refused)} refused"
    assert len(acks) - len(refused) >= 2
    # and once answered, the socket may send again
    assert (await client.call("room:join", room.pk))["status"] == "ok"


# --- open sockets per user and per address ------------------------------------------


async def refused_connect(client, url: str, **kwargs: Any) -> list[Any]:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, **kwargs)
    assert not client.connected
    return client.events["connect_error"]


async def test_open_sockets_per_user_are_capped_and_released(server_factory, clients):
    process = server_factory("caps", CHAT_MAX_SOCKETS_PER_USER="2")
    alice, bob = await make_users(2)
    first = await clients().connect(process.url, token=token_for(alice))
    await clients().connect(process.url, token=token_for(alice), transport="polling")

    assert await refused_connect(clients(), process.url, token=token_for(alice)) == [
        {"message": capacity.TOO_MANY_FOR_USER}
    ]
    # another user is not affected, and a closed socket is given back
    await clients().connect(process.url, token=token_for(bob))
    await first.disconnect()
    await asyncio.sleep(0.3)
    assert (await clients().connect(process.url, token=token_for(alice))).connected


def own_prefix() -> dict[str, str]:
    """Every test client connects from 127.0.0.1: a Redis prefix of its own keeps
    the sockets of other tests' servers out of this test's address count."""
    return {"CHAT_REDIS_PREFIX": f"{SESSION_PREFIX}-{uuid.uuid4().hex[:8]}"}


async def test_open_sockets_per_address_are_capped(server_factory, clients):
    # given an address cap of 3 and no proxy trusted
    process = server_factory("caps", CHAT_MAX_SOCKETS_PER_ADDRESS="3", **own_prefix())
    users = await make_users(4)
    for i, user in enumerate(users[:3]):
        # a client claiming to be elsewhere is not believed
        await clients().connect(process.url, token=token_for(user), headers={"X-Forwarded-For": f"10.0.0.{i}"})
    errors = await refused_connect(
        clients(), process.url, token=token_for(users[3]), headers={"X-Forwarded-For": "10.0.0.9"}
    )
    assert errors == [{"message": capacity.TOO_MANY_FOR_ADDRESS}]


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(server_factory, clients):
    process = server_factory("caps", CHAT_MAX_SOCKETS_PER_ADDRESS="1", TRUSTED_PROXY_IPS="127.0.0.1", **own_prefix())
    alice, bob, carol = await make_users(3)
    await clients().connect(process.url, token=token_for(alice), headers={"X-Forwarded-For": "198.51.100.1"})
    # what the client put left of the proxy's entry is not believed
    await clients().connect(
        process.url, token=token_for(bob), headers={"X-Forwarded-For": "198.51.100.1, 198.51.100.2"}
    )
    errors = await refused_connect(
        clients(), process.url, token=token_for(carol), headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}
    )
    assert errors == [{"message": capacity.TOO_MANY_FOR_ADDRESS}]


def test_client_address_is_the_scopes_peer_whatever_the_headers_claim():
    # uvicorn has already replaced the peer for a trusted proxy; the header
    # itself is never read here.
    env: dict[str, Any] = {
        "REMOTE_ADDR": "127.0.0.1",
        "asgi.scope": {"client": ("192.0.2.1", 5000)},
        "HTTP_X_FORWARDED_FOR": "203.0.113.9",
    }
    assert capacity.client_address(env) == "192.0.2.1"
    assert capacity.client_address({"REMOTE_ADDR": "198.51.100.4"}) == "198.51.100.4"
