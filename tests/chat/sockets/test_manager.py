"""ChannelLayerManager's listener in-process: it never ends, and a subscription
that dies silently is noticed by the heartbeat and rebuilt.

(The real thing, two server processes and a Redis restart, is in
test_bus_recovery.py; there redis-py resubscribes by itself, so the rebuild
path is shown here, where nothing else would bring the subscription back.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import socketio
from channels.layers import InMemoryChannelLayer
from engineio.async_socket import AsyncSocket

from chat.sockets.manager import ChannelLayerManager


async def _wait(condition, timeout: float = 3) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _listening(manager: ChannelLayerManager):
    """Run the manager's listener; yield (what it yielded, its task)."""
    received: list[dict] = []

    async def consume():
        async for message in manager._listen():
            received.append(message)

    listener = asyncio.create_task(consume())
    try:
        yield received, listener
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def test_a_silently_dead_subscription_is_counted_logged_and_rebuilt(caplog):
    # given a manager listening on an in-memory layer with a fast heartbeat
    layer = InMemoryChannelLayer(capacity=1000)
    group = f"bus-{uuid.uuid4().hex[:8]}"
    manager = ChannelLayerManager(group, heartbeat_interval=0.05, heartbeat_timeout=0.3, channel_layer=layer)
    async with _listening(manager) as (received, listener):
        await _wait(lambda: group in layer.groups)
        await manager._publish({"method": "emit", "event": "one", "host_id": "another-host"})
        await _wait(lambda: [m["event"] for m in received] == ["one"])

        # when the subscription disappears without an error (as the in-memory
        # layer's group expiry, or a Redis that lost its subscribers, does)
        with caplog.at_level(logging.WARNING, logger="chat.sockets.manager"):
            del layer.groups[group]
            await _wait(lambda: manager.bus_rebuilds >= 1 and group in layer.groups)

            # then the drop was counted and logged, and the bus works again
            assert manager.bus_drops == 1
            await manager._publish({"method": "emit", "event": "two", "host_id": "another-host"})
            await _wait(lambda: [m["event"] for m in received] == ["one", "two"])
            await _wait(lambda: "recovered" in caplog.text)
        assert "socket.io bus dropped (1 so far): no heartbeat for" in caplog.text
        # heartbeats and this host's own audience messages are never yielded
        assert all(m["method"] == "emit" for m in received)
        assert not listener.done()  # python-socketio stops listening for good if it ends


class _SlowLayer(InMemoryChannelLayer):
    """An in-memory layer whose publishes take a while and are counted."""

    def __init__(self) -> None:
        super().__init__(capacity=1000)
        self.group_sends = 0
        self.fail = False

    async def group_send(self, group, message):
        self.group_sends += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("bus down")
        await super().group_send(group, message)


async def test_emits_handed_over_during_a_publish_go_out_together_in_order():
    # given a manager on its server's loop, over a bus whose publishes take 10 ms
    layer = _SlowLayer()
    group = f"bus-{uuid.uuid4().hex[:8]}"
    manager = ChannelLayerManager(group, channel_layer=layer)
    manager.loop = asyncio.get_running_loop()  # what initialize() does in a server
    async with _listening(manager) as (received, _listener):
        await _wait(lambda: group in layer.groups)
        before = layer.group_sends

        # when twenty emits are handed over at once
        await asyncio.gather(
            *(manager._publish({"method": "emit", "event": f"e{i}", "host_id": "another-host"}) for i in range(20))
        )

        # then they all arrive, in order, in far fewer publishes
        await _wait(lambda: len(received) == 20)
        assert [m["event"] for m in received] == [f"e{i}" for i in range(20)]
        assert layer.group_sends - before <= 3

        # and a publish that fails fails every emit it carried
        layer.fail = True
        results = await asyncio.gather(
            *(manager._publish({"method": "emit", "event": "lost", "host_id": "another-host"}) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, ConnectionError) for r in results), results


async def test_a_socket_past_its_ping_timeout_does_not_reorder_emits():
    # given a real python-socketio server on our manager with three sockets in
    # one room (engine.io sockets without a transport: packets stay on their
    # queues), the first of which stopped answering pings, and a disconnect
    # handler that takes a while (ours makes Redis round trips)
    manager = ChannelLayerManager(f"bus-{uuid.uuid4().hex[:8]}", channel_layer=InMemoryChannelLayer())
    server = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    disconnected: list[str] = []

    @server.on("connect", namespace="/t")
    async def connect(sid, environ, auth=None):
        await server.enter_room(sid, "r", namespace="/t")

    @server.on("disconnect", namespace="/t")
    async def disconnect(sid, reason=None):
        await asyncio.sleep(0.005)
        disconnected.append(sid)

    sockets = {}
    for name in "abc":
        socket = AsyncSocket(server.eio, f"eio-{name}")
        socket.connected = True
        server.eio.sockets[socket.sid] = socket
        sockets[name] = socket
        await server._handle_eio_connect(socket.sid, {})
        await server._handle_eio_message(socket.sid, "0/t,")
    for socket in sockets.values():
        while not socket.queue.empty():
            socket.queue.get_nowait()
    sockets["a"].last_ping = time.time() - 1000
    published: list[Any] = []
    real_publish = manager._publish

    async def publish(data):
        if data.get("method") == "emit":
            published.append(data["data"])
        await real_publish(data)

    manager._publish = publish

    # when two broadcasts start one after the other, as the writer starts them
    first = asyncio.create_task(server.emit("chat:message", {"seq": 1}, to="r", namespace="/t"))
    await asyncio.sleep(0)
    second = asyncio.create_task(server.emit("chat:message", {"seq": 2}, to="r", namespace="/t"))
    await asyncio.gather(first, second)
    await _wait(lambda: disconnected)

    # then the live sockets and the bus get them in order, and the lapsed socket is closed
    for name in "bc":
        queue = sockets[name].queue
        got = [queue.get_nowait().data for _ in range(queue.qsize())]
        assert got == ['2/t,["chat:message",{"seq":1}]', '2/t,["chat:message",{"seq":2}]']
    assert published == [[{"seq": 1}], [{"seq": 2}]]
    assert sockets["a"].closed and len(disconnected) == 1
