"""The one python-socketio server of the process, mounted by chatsite/asgi.py."""

from __future__ import annotations

import socketio
from django.conf import settings

from chat.sockets.manager import ChannelLayerManager

CHAT_NAMESPACE = "/chat"

# Frames above this close the connection (engine.io's own limit); anything
# smaller but still too large for its event is answered `invalid`.
MAX_FRAME_BYTES = 1_000_000

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=ChannelLayerManager(),
    # None would mean "same origin only"; browsers on other allowed origins
    # (the support widget's sites) are listed in CORS_ALLOWED_ORIGINS.
    cors_allowed_origins=list(settings.CORS_ALLOWED_ORIGINS) or None,
    max_http_buffer_size=MAX_FRAME_BYTES,
    ping_interval=20,
    ping_timeout=20,
    logger=False,
    engineio_logger=False,
)
