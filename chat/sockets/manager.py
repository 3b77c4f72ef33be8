"""A python-socketio client manager whose pub/sub transport is the Channels layer.

python-socketio's AsyncPubSubManager handles an emit for this process's sockets
and publishes it for the others; this subclass publishes on a Channels group and
listens on it, so the bus is channels_redis's pub/sub layer with REDIS_URL and
the in-memory layer without. Sync code (REST views, the admin) reaches the same
bus through chat/broadcast.py.

Health of the bus. channels_redis swallows Redis errors in its own receive task
and redis-py resubscribes after it reconnects, so a listener blocked on
`layer.receive()` never learns that the bus broke: messages published while it
was down are simply gone. So the listener publishes a heartbeat through the
same group and expects to hear it back. A heartbeat that cannot be published,
or that does not come back in time, is a drop: counted, logged, and, if the
subscription stays silent, rebuilt from scratch (a new connection, a new
subscription). When this process's own heartbeat comes back through the bus
again, every local socket joined to a room is told `sync:required` with each
of its rooms' last seq (chat/broadcast.py), and fetches what it lacks with
`since`: a gap in `seq` shows only once a later message arrives, and the
newest message of a quiet room would otherwise stay missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from channels.layers import get_channel_layer
from engineio import packet as eio_packet
from redis.exceptions import ConnectionError as RedisConnectionError
from socketio import packet as sio_packet
from socketio.async_manager import AsyncManager
from socketio.async_pubsub_manager import AsyncPubSubManager

logger = logging.getLogger(__name__)

# Extra manager methods: act on every socket of an audience (a Socket.IO room)
# wherever it is connected, e.g. all sockets of a banned user.
_AUDIENCE_METHODS = ("move_audience", "disconnect_audience")
_HEARTBEAT = "heartbeat"

# One heartbeat a second per process is a negligible load on Redis (N processes
# cost N*N tiny deliveries a second). A heartbeat that cannot be published is
# a drop at once; a silent bus (no error anywhere) is noticed within 5 s.
HEARTBEAT_INTERVAL = 1.0
# Silence longer than this is a drop, and the subscription is rebuilt. Any
# message from the bus counts as a sign of life, so a listener working through
# a backlog is not declared dead; 5 s leaves room for an overloaded loop, for
# a false alarm costs a rebuild during which other processes' events are lost.
HEARTBEAT_TIMEOUT = 5.0
_REBUILD_BACKOFF_MAX = 5.0
PUBLISH_TIMEOUT = 2.0


# Messages carried by one bus message at most (a batch of chat messages of
# 5,000 characters each stays under a few hundred KB).
OUTBOX_BATCH = 50
_BATCH = "batch"


# A `skip_sid` entry with this prefix names an audience rather than a socket:
# every process skips its own sockets in that audience (see _InlineFanOut.emit).
# It crosses the bus inside the emit's skip_sid list, as python-socketio
# publishes it. Socket ids never contain a colon.
_SKIP_AUDIENCE = "audience:"


def skip_audience(audience: str) -> str:
    """A `skip_sid` entry that skips every socket in `audience` (e.g. every
    socket of a user: "others in the room"), on every process."""
    return f"{_SKIP_AUDIENCE}{audience}"


def _unbatched(data: Any) -> list[dict[str, Any]]:
    """The messages of one bus message: a batch's, or the one it is."""
    if not isinstance(data, dict):
        return []
    if data.get("method") == _BATCH:
        return [m for m in data.get("messages", ()) if isinstance(m, dict)]
    return [data]


class BusDroppedError(Exception):
    """The subscription to the bus went silent; the listener rebuilds it."""


class _InlineFanOut(AsyncManager):
    """AsyncManager.emit to this process's sockets without a task per recipient,
    and without ever pausing midway.

    python-socketio creates a task for every recipient of an emit and waits for
    them all; handing a packet to a socket only puts it on that socket's queue,
    so the tasks cost more than the work: about a tenth of the server's CPU at
    a few hundred messages a second into rooms of 20 (docs/benchmark.md). Here
    the packet is encoded once and put on each recipient's queue in turn.

    Never pausing is what keeps order: an emit reaches every local socket, and
    then hands its message to the bus (AsyncPubSubManager.emit), in the step
    that starts it, so emits leave in the order they were started. A socket
    whose client stopped answering pings would make engine.io close it inline
    (running our disconnect handler) before queueing; those are left to a task
    of their own, which closes them.

    Emits with a callback (acks expected from clients, which we never ask for)
    keep python-socketio's own path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closing: set[asyncio.Task[None]] = set()  # strong references

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: str | list[str] | None = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms or self.server is None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = self._skipped(namespace, skip_sid)
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        eio_packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        engine = self.server.eio
        overdue: list[str] = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = engine.sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            if socket.last_ping and time.time() - socket.last_ping > engine.ping_timeout:
                overdue.append(eio_sid)
                continue
            for eio_pkt in eio_packets:
                socket.queue.put_nowait(eio_pkt)
        if overdue:
            task = asyncio.get_running_loop().create_task(self._send_to_overdue(overdue, eio_packets))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _skipped(self, namespace: str, skip_sid: str | list[str] | None) -> set[str | None]:
        """The sids to skip: those named, and this process's sockets in each
        audience named with skip_audience()."""
        named = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        skip: set[str | None] = set()
        for entry in named:
            if isinstance(entry, str) and entry.startswith(_SKIP_AUDIENCE):
                audience = entry.removeprefix(_SKIP_AUDIENCE)
                skip.update(sid for sid, _eio_sid in self.get_participants(namespace, audience))
            else:
                skip.add(entry)
        return skip

    async def _send_to_overdue(self, eio_sids: list[str], eio_packets: list[eio_packet.Packet]) -> None:
        """engine.io's own send, which finds the client gone and closes the socket."""
        assert self.server is not None
        for eio_sid in eio_sids:
            for eio_pkt in eio_packets:
                try:
                    await self.server._send_eio_packet(eio_sid, eio_pkt)
                except Exception:
                    logger.debug("send to an overdue socket %s failed", eio_sid, exc_info=True)
                    break


class ChannelLayerManager(AsyncPubSubManager, _InlineFanOut):
    name = "channels"

    def __init__(
        self,
        group: str = "socketio",
        logger: logging.Logger | None = None,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        channel_layer: Any = None,
    ) -> None:
        super().__init__(channel=group, logger=logger)
        self._channel_layer = channel_layer  # None: the project's layer (tests pass their own)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.bus_drops = 0  # how often the bus was found broken
        self.bus_rebuilds = 0  # how often the subscription was rebuilt
        self._healthy = True
        self._down_since = 0.0
        self._last_seen = 0.0
        self._last_beat_sent = 0.0
        self._outbox: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._outbox_ready: asyncio.Event | None = None
        self._outbox_task: asyncio.Task[None] | None = None
        self._recoveries: set[asyncio.Task[None]] = set()  # strong references
        # The server's event loop, known once the first client arrived: sync
        # code on other threads hands fan-out to it (chat/broadcast.py).
        self.loop: asyncio.AbstractEventLoop | None = None

    def initialize(self) -> None:
        # Called by the server on its loop, before the first connection.
        self.loop = asyncio.get_running_loop()
        super().initialize()

    def _layer(self) -> Any:
        return self._channel_layer or get_channel_layer()

    async def _publish(self, data: dict[str, Any]) -> None:
        """Hand a message to the bus; return once it is published.

        One sender task per process publishes in call order. What is handed
        over while a publish is in flight goes out together in the next one,
        as one bus message: under load, a Redis PUBLISH (and its decoding by
        every process, this one included) carries many emits instead of one.
        """
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            # A short-lived loop (async_to_sync in a command or a test) would
            # end with the sender task still in it: publish directly.
            await self._group_send(data)
            return
        ready = self._outbox_ready
        if ready is None or self._outbox_task is None or self._outbox_task.done():
            ready = self._outbox_ready = asyncio.Event()
            self._outbox_task = loop.create_task(self._send_outbox(ready))
        sent: asyncio.Future[None] = loop.create_future()
        self._outbox.append((data, sent))
        ready.set()
        await sent

    async def _send_outbox(self, ready: asyncio.Event) -> None:
        while True:
            await ready.wait()
            ready.clear()
            batch, self._outbox = self._outbox[:OUTBOX_BATCH], self._outbox[OUTBOX_BATCH:]
            if self._outbox:
                ready.set()
            if not batch:
                continue
            messages = [data for data, _ in batch]
            try:
                if len(messages) == 1:
                    await self._group_send(messages[0])
                else:
                    await self._group_send({"method": _BATCH, "messages": messages})
            except Exception as error:
                for _, sent in batch:
                    if not sent.done():
                        sent.set_exception(error)
            else:
                for _, sent in batch:
                    if not sent.done():
                        sent.set_result(None)

    async def _group_send(self, data: dict[str, Any]) -> None:
        layer = self._layer()
        message = {"type": "socketio.message", "data": data}
        # Bounded: the layer's connection has no socket timeout, and a Redis
        # that hangs would otherwise hold every emit of the process (and the
        # FIFO of sync broadcasts behind them) for good.
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            try:
                await layer.group_send(self.channel, message)
            except (ConnectionError, RedisConnectionError):
                # After a Redis restart the first command on each pooled
                # connection fails (its socket died with the old server); a
                # second try gets a fresh connection. A second failure means
                # Redis is really down.
                await layer.group_send(self.channel, message)

    # --- listening ------------------------------------------------------------

    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        # python-socketio stops listening for good when this generator ends, so
        # it never does: whatever breaks is counted, logged and rebuilt with a
        # capped backoff.
        backoff = 0.5
        while True:
            layer = self._layer()
            channel: str | None = None
            receiver: asyncio.Future[Any] | None = None
            try:
                # Bounded: a Redis that hangs (rather than refuses) would
                # otherwise hold the listener, and so the whole bus, forever.
                channel = await asyncio.wait_for(layer.new_channel(prefix="socketio."), self.heartbeat_timeout)
                await asyncio.wait_for(layer.group_add(self.channel, channel), self.heartbeat_timeout)
                self._last_seen = time.monotonic()
                await self._send_heartbeat()
                while True:
                    if receiver is None:
                        receiver = asyncio.ensure_future(layer.receive(channel))
                    # Wait without cancelling the receive: cancelling it makes
                    # channels_redis unsubscribe the channel.
                    done, _ = await asyncio.wait({receiver}, timeout=self.heartbeat_interval)
                    if receiver in done:
                        message = receiver.result()
                        receiver = None
                        self._last_seen = time.monotonic()
                        for data in _unbatched(message.get("data") if isinstance(message, dict) else None):
                            if data.get("method") == _HEARTBEAT:
                                if data.get("host_id") == self.host_id:
                                    self._bus_alive()
                                    backoff = 0.5
                            elif data.get("method") in _AUDIENCE_METHODS:
                                if data.get("host_id") != self.host_id:
                                    await self._handle_audience(data)
                            else:
                                yield data
                    await self._tick()
            except asyncio.CancelledError:
                if receiver is not None:
                    receiver.cancel()
                raise
            except Exception as error:
                if not isinstance(error, BusDroppedError):
                    self._bus_dropped(f"listener failed: {error!r}")
                logger.warning("socket.io bus: rebuilding the subscription in %.1f s", backoff)
                await self._teardown(layer, channel, receiver)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _REBUILD_BACKOFF_MAX)
                self.bus_rebuilds += 1

    async def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_beat_sent >= self.heartbeat_interval:
            await self._send_heartbeat()
        silent_for = now - self._last_seen
        if silent_for > self.heartbeat_timeout:
            self._bus_dropped(f"no heartbeat for {silent_for:.1f} s")
            raise BusDroppedError

    async def _send_heartbeat(self) -> None:
        self._last_beat_sent = time.monotonic()
        try:
            await self._publish({"method": _HEARTBEAT, "host_id": self.host_id})
        except Exception as error:
            self._bus_dropped(f"heartbeat not published: {error!r}")

    def _bus_dropped(self, reason: str) -> None:
        if not self._healthy:
            return
        self._healthy = False
        self._down_since = time.monotonic()
        self.bus_drops += 1
        logger.error(
            "socket.io bus dropped (%d so far): %s; events published meanwhile are lost in transit",
            self.bus_drops,
            reason,
        )

    def _bus_alive(self) -> None:
        if self._healthy:
            return
        self._healthy = True
        logger.warning("socket.io bus recovered after %.1f s", time.monotonic() - self._down_since)
        # Now, not at the drop: this heartbeat came back through the
        # subscription, so whatever is published from here on reaches this
        # process, and the last seqs read after this point cover everything
        # whose broadcast may have been lost. Told at the drop, a client would
        # repair while the bus is still down and miss what is stored after its
        # repair, with nobody to tell it. Every room with a local socket is
        # affected: any broadcast another process published meanwhile may be
        # lost (this process's own emits reach its local sockets before the
        # bus, AsyncPubSubManager.emit).
        task = asyncio.get_running_loop().create_task(self._after_recovery())
        self._recoveries.add(task)
        task.add_done_callback(self._recoveries.discard)

    async def _after_recovery(self) -> None:
        # Late import: chat.broadcast builds on the server that holds this manager.
        from chat import broadcast

        try:
            await broadcast.sync_required(self)
        except Exception:
            logger.exception("telling the sockets to sync after the bus recovered failed")

    async def _teardown(self, layer: Any, channel: str | None, receiver: asyncio.Future[Any] | None) -> None:
        """Forget the dead subscription and its connection; errors are expected
        here (Redis may still be down) and do not matter."""
        if receiver is not None:
            receiver.cancel()

        async def forget() -> None:
            if channel is not None:
                await layer.group_discard(self.channel, channel)
            if type(layer).__name__ == "RedisPubSubChannelLayer":
                # Drop the layer's connection too, so the next subscribe starts
                # from a fresh one. (The in-memory layer has no connection, and
                # flushing it would drop every other channel of the process.)
                await layer.flush()

        try:
            await asyncio.wait_for(forget(), self.heartbeat_timeout)
        except Exception:
            logger.debug("tearing down the bus subscription failed", exc_info=True)

    # --- audience operations --------------------------------------------------

    async def move_audience(self, audience: str, namespace: str, *, leave: str) -> None:
        """Every socket in `audience` leaves the room `leave`, on every process."""
        message = {"method": "move_audience", "audience": audience, "namespace": namespace, "leave": leave}
        await self._handle_audience(message)
        await self._publish({**message, "host_id": self.host_id})

    async def disconnect_audience(self, audience: str, namespace: str) -> None:
        """Disconnect every socket in `audience`, on every process."""
        message = {"method": "disconnect_audience", "audience": audience, "namespace": namespace}
        await self._handle_audience(message)
        await self._publish({**message, "host_id": self.host_id})

    async def _handle_audience(self, message: dict[str, Any]) -> None:
        namespace = message.get("namespace") or "/"
        sids = [sid for sid, _eio_sid in self.get_participants(namespace, message.get("audience"))]
        for sid in sids:
            if message["method"] == "move_audience":
                await AsyncManager.leave_room(self, sid, namespace, message.get("leave"))
            elif self.server is not None:
                await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)
