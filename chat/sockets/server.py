"""The one python-socketio server of the process, mounted by chatsite/asgi.py."""

from __future__ import annotations

from typing import Any

from django.conf import settings

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


# Guarded: hand-written packets (too deep, broken, reserved names) get an
# `invalid` ack instead of a traceback; see chat/sockets/packets.py.
sio = GuardedServer(
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
