"""The Socket.IO bus survives a Redis restart: the manager notices the drop,
counts and logs it, and delivery between processes resumes by itself."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from asgiref.sync import sync_to_async

from chat.models import Room
from tests.chat.sockets.conftest import joined, make_room, make_users
from tests.conftest import token_for
from tests.support.redis import RedisServer

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not RedisServer.available(), reason="needs redis-server on PATH"),
]


async def _until_delivered(sender, receiver, room, *, timeout: float) -> float:
    """Send every 0.3 s until one of these sends reaches `receiver`; the seconds it took."""
    started = time.monotonic()
    sent: set[str] = set()
    n = 0
    while time.monotonic() - started < timeout:
        n += 1
        ack = await sender.call("chat:message", {"roomId": room.pk, "text": f"probe {n}"}, timeout=5)
        if ack.get("status") == "ok":
            sent.add(ack["messageId"])
        if any(m["id"] in sent for m in receiver.events["chat:message"]):
            return time.monotonic() - started
        await asyncio.sleep(0.3)
    raise AssertionError(f"no delivery within {timeout}s; acks were like {ack!r}")


async def test_delivery_between_processes_resumes_after_a_redis_restart(server_factory, clients):
    # given two processes sharing a private Redis, alice on one and bob on the other
    redis = RedisServer().start()
    try:
        a_server = server_factory(name="bus-a", REDIS_URL=redis.url)
        b_server = server_factory(name="bus-b", REDIS_URL=redis.url)
        alice, bob = await make_users(2)
        room = await make_room(members=[alice, bob])
        a = await clients().connect(a_server.url, token=token_for(alice))
        b = await clients().connect(b_server.url, token=token_for(bob))
        await joined(a, room)
        await joined(b, room)
        await _until_delivered(a, b, room, timeout=5)

        # when Redis goes away for a few seconds and comes back empty
        redis.stop()
        await asyncio.sleep(4)  # several heartbeats (1 s) fail to publish meanwhile
        redis.start()

        # then messages from A reach B again without any restart of A or B
        took = await _until_delivered(a, b, room, timeout=20)
        assert a.connected and b.connected

        # and each process counted and logged the drop, and its recovery
        await asyncio.sleep(1.5)
        for process in (a_server, b_server):
            log = process.log_path.read_text(errors="replace")
            assert re.search(r"socket\.io bus dropped \(1 so far\)", log), process.log_tail()
            assert "socket.io bus recovered after" in log, process.log_tail()
        print(f"delivery resumed {took:.1f} s after Redis came back")
    finally:
        redis.stop()


async def test_delivery_resumes_after_redis_hangs(server_factory, clients):
    # given two processes sharing a private Redis
    redis = RedisServer().start()
    try:
        a_server = server_factory(name="hang-a", REDIS_URL=redis.url)
        b_server = server_factory(name="hang-b", REDIS_URL=redis.url)
        alice, bob = await make_users(2)
        room = await make_room(members=[alice, bob])
        a = await clients().connect(a_server.url, token=token_for(alice))
        b = await clients().connect(b_server.url, token=token_for(bob))
        await joined(a, room)
        await joined(b, room)
        await _until_delivered(a, b, room, timeout=5)

        # when Redis stops answering without closing anything (SIGSTOP: a hung
        # server, or a network that drops packets), then answers again
        redis.pause()
        await asyncio.sleep(7)  # past the publish (2 s) and heartbeat (5 s) timeouts
        redis.resume()

        # then delivery resumes, and neither process was stuck behind the hang
        await _until_delivered(a, b, room, timeout=20)
        for process in (a_server, b_server):
            assert "socket.io bus dropped (1 so far)" in process.log_path.read_text(errors="replace")
    finally:
        redis.resume()
        redis.stop()


async def test_a_message_lost_while_the_bus_was_down_is_announced_by_sync_required(server_factory, clients):
    # given alice on process A and bob on process B in a room, sharing a private Redis
    redis = RedisServer().start()
    try:
        a_server = server_factory(name="sync-a", REDIS_URL=redis.url)
        b_server = server_factory(name="sync-b", REDIS_URL=redis.url)
        alice, bob = await make_users(2)
        room = await make_room(members=[alice, bob])
        quiet = await make_room(members=[alice])  # a room nothing happens in
        a = await clients().connect(a_server.url, token=token_for(alice))
        b = await clients().connect(b_server.url, token=token_for(bob))
        await joined(a, room)
        await joined(a, quiet)
        await joined(b, room)
        await _until_delivered(b, a, room, timeout=5)
        # (the probes sent before the first one arrived are still on their way)
        newest = await sync_to_async(lambda: Room.objects.get(pk=room.pk).last_seq)()
        last_seen = await a.wait_for("chat:message", lambda m: m["seq"] == newest, timeout=5)

        # when Redis goes away, bob's next message is stored on B while the
        # bus cannot carry it, and Redis comes back
        redis.stop()
        await asyncio.sleep(1.5)  # A's heartbeat fails to publish meanwhile
        ack = await b.call("chat:message", {"roomId": room.pk, "text": "sent into the outage"}, timeout=10)
        assert ack["status"] == "ok", ack
        await asyncio.sleep(1.5)
        redis.start()
        back = time.monotonic()

        # then alice, who never heard it, is told to sync once the bus is back,
        # with each of her rooms' last seq read from the database
        sync = await a.wait_for("sync:required", timeout=20)
        print(f"sync:required {time.monotonic() - back:.1f} s after Redis came back")
        assert sorted(sync["rooms"], key=lambda r: r["roomId"]) == sorted(
            [{"roomId": room.pk, "lastSeq": ack["seq"]}, {"roomId": quiet.pk, "lastSeq": 0}],
            key=lambda r: r["roomId"],
        )
        assert not [m for m in a.events["chat:message"] if m["id"] == ack["messageId"]]
        assert ack["seq"] > last_seen["seq"]
        # and a repair from her last message brings exactly the missed one
        repaired = await joined(a, room, since=last_seen["id"])
        assert [(m["id"], m["seq"], m["text"]) for m in repaired["messages"]] == [
            (ack["messageId"], ack["seq"], "sent into the outage")
        ]
        assert "sync:required sent to 1 sockets for 2 rooms" in a_server.log_path.read_text(errors="replace")
    finally:
        redis.stop()
