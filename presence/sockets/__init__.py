"""Presence on the /chat namespace.

chat/sockets/handlers.py calls `socket_connected` after a socket is
authenticated (and has entered its `user:<id>` audience) and
`socket_disconnected` when it goes; presence events of their own
(`presence:away`, `presence:active`) are registered in presence/sockets/handlers.py.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import User

from chat.schemas import user_ref
from presence import broadcast, metrics, services
from presence.sockets import handlers as _handlers  # noqa: F401  (registers the presence events)

logger = logging.getLogger(__name__)


async def socket_connected(*, sid: str, user: User) -> None:
    """A socket of `user` is up (this process). Sends `presence:list` to it.

    Runs inside the connect handler, so the list is queued before the
    namespace's CONNECT packet and clients have it as soon as they are
    connected. A presence failure is logged and never refuses the connection."""
    try:
        with metrics.phase("connect"):
            await services.presence_start()
            entries = await services.presence_connect(sid=sid, user=user_ref(user))
            await broadcast.presence_list_sent(sid=sid, entries=entries)
    except Exception:
        logger.exception("presence for user %s (sid %s) on connect failed", user.pk, sid)


async def socket_disconnected(*, sid: str, user: User) -> None:
    """A socket of `user` is gone (this process)."""
    with metrics.phase("disconnect"):
        await services.presence_disconnect(sid=sid, user=user_ref(user))
