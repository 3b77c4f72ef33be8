"""The one python-socketio server of the process, mounted by chatsite/asgi.py."""

from __future__ import annotations

import collections
from typing import Any

import socketio
from django.conf import settings
from socketio import packet

from chat.errors import ChatError, ErrorCode
from chat.ratelimit import rate_limit_hit_async, too_fast
from chat.sockets.auth import own_origin
from chat.sockets.manager import ChannelLayerManager
from chat.sockets.packets import GuardedPacket, GuardedServer

CHAT_NAMESPACE = "/chat"

# Frames above this close the connection (engine.io's own limit); anything
# smaller but still too large for its event is answered `invalid`.
MAX_FRAME_BYTES = 1_000_000


def origin_allowed(origin: str, environ: dict[str, Any]) -> bool:
    """The server's own origin (the page) and the origins of CORS_ALLOWED_ORIGINS.

    engine.io checks this on every request, the WebSocket handshake included,
    which browsers do not subject to CORS: a page of any other origin is
    refused before Socket.IO sees it (cross-site WebSocket hijacking). Requests
    without an Origin (not browsers) are not checked.
    """
    return origin == own_origin(environ) or origin in settings.CORS_ALLOWED_ORIGINS


# The per-user bucket (chat/ratelimit.py) each client event of /chat is counted
# in, before its handler runs. `chat:message` is counted by the batch writer
# itself (chat/message_writer.py): only new messages cost quota there.
# tests/chat/sockets/test_limits.py checks that every registered event is here.
EVENT_BUCKETS: dict[str, str | None] = {
    "room:join": "joins",
    "room:leave": "leaves",
    "chat:typing": "typing",
    "chat:read": "reads",
    "presence:away": "presence",
    "presence:active": "presence",
    "chat:message": None,
}

IN_FLIGHT_MESSAGE = "Too many events in flight on this connection: wait for their answers"


class BoundedServer(socketio.AsyncServer):
    """The AsyncServer, with every client event bounded before any handler runs.

    Two rules, both here, both before the handler and so before any database
    work: an event over its user's limit (EVENT_BUCKETS) is answered
    `rate_limited`; and a socket may have CHAT_MAX_EVENTS_IN_FLIGHT events
    whose handlers have not answered yet. python-socketio starts a task per
    event without waiting for the last, and a client can send thousands of
    WebSocket frames back to back (a long-polling POST carries at most 16
    packets, engine.io's max_decode_packets); the frames already received are
    dispatched before the first task runs, so the count is taken in that
    dispatch step. Over the cap an event is answered `rate_limited` at once,
    or dropped if it asked no ack.

    (python-socketio 5.x's `_handle_event` dispatches and
    `_handle_event_internal` runs the handler and sends the ack.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight: collections.Counter[str] = collections.Counter()

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            await super()._handle_event(eio_sid, namespace, id, data)  # logs and drops it
            return
        if self.in_flight[sid] >= settings.CHAT_MAX_EVENTS_IN_FLIGHT:
            if id is not None:
                refusal = ChatError(ErrorCode.RATE_LIMITED, IN_FLIGHT_MESSAGE).as_ack()
                await self._send_packet(
                    eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=[refusal])
                )
            return
        # Counted here, and given back when the handler is done: no await
        # between the check above and the task's start.
        self.in_flight[sid] += 1
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_event_internal(
        self, server: socketio.AsyncServer, sid: str, eio_sid: str, data: Any, namespace: str, id: int | None
    ) -> None:
        try:
            refusal = await self._over_limit(sid, namespace, data[0] if data else None)
            if refusal is None:
                await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)
            elif id is not None:
                await self._send_packet(
                    eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=[refusal])
                )
        finally:
            self.in_flight[sid] -= 1
            if self.in_flight[sid] <= 0:
                del self.in_flight[sid]

    async def _over_limit(self, sid: str, namespace: str, event: object) -> dict[str, str] | None:
        """The refusal of an event over its user's limit, or None to run it."""
        bucket = EVENT_BUCKETS.get(event) if namespace == CHAT_NAMESPACE and isinstance(event, str) else None
        if bucket is None:
            return None
        try:
            user = (await self.get_session(sid, namespace=namespace)).get("user")
        except KeyError:  # gone meanwhile; the handler finds out itself
            return None
        if user is None:
            return None
        decision = await rate_limit_hit_async(user_id=int(user.pk), bucket=bucket)
        return None if decision.allowed else too_fast(bucket, decision).as_ack()


class ChatServer(GuardedServer, BoundedServer):
    """The guard reads a packet first (chat/sockets/packets.py), the limits
    after: a packet the guard refuses never reaches BoundedServer's dispatch,
    so it is never counted in flight without being counted back."""


# Guarded: hand-written packets (too deep, broken, reserved names) get an
# `invalid` ack instead of a traceback; see chat/sockets/packets.py.
sio = ChatServer(
    async_mode="asgi",
    serializer=GuardedPacket,
    client_manager=ChannelLayerManager(),
    # A list would replace "same origin" rather than add to it, and refuse
    # the server's own page as soon as one widget site is listed.
    cors_allowed_origins=origin_allowed,
    max_http_buffer_size=MAX_FRAME_BYTES,
    ping_interval=20,
    ping_timeout=20,
    logger=False,
    engineio_logger=False,
)
