"""The one ASGI application: Socket.IO at /socket.io/, Django for everything else.

Wiring only. The Socket.IO server and its handlers live in chat/sockets/.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the imports below

import socketio  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

import chat.sockets.handlers  # noqa: E402,F401  (registers the /chat events)
import presence.sockets  # noqa: E402,F401  (registers presence on /chat)
from chat.sockets.server import sio  # noqa: E402

socketio_app = socketio.ASGIApp(sio, socketio_path="socket.io")

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("socket.io/", socketio_app),
                re_path(r"", django_asgi_app),  # type: ignore[arg-type]
            ]
        ),
        "websocket": URLRouter([path("socket.io/", socketio_app)]),
    }
)
