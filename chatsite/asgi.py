"""The one ASGI application: Socket.IO at /socket.io/, Django for everything else.

Wiring only. The Socket.IO server and its handlers live in chat/sockets/.
"""

from __future__ import annotations

import gc
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

# Everything imported so far lives as long as the process. Frozen, the
# garbage collector's full passes no longer walk it: in a Django process they
# stalled the event loop for about 100 ms each under load, and a larger first
# generation makes the young-object passes rarer. Both measured with `make
# bench` (docs/benchmark.md, "Garbage collection").
gc.freeze()
gc.set_threshold(10_000, 20, 10)
