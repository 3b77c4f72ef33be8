"""Client events of presence on /chat: `presence:away` and `presence:active`.

A tab says `presence:away` when its user is idle and `presence:active` when
they are back; no payload. The ack is `{"status": "ok", "presence": "<status>"}`
where `presence` is what the user shows now over all their tabs ("online"
while any tab is active), or the error ack of protocol.md.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User

from chat.errors import ChatError, ErrorCode
from chat.schemas import user_ref
from chat.sockets.server import CHAT_NAMESPACE, sio
from presence import metrics, services
from presence.registry import AWAY, ONLINE, Status

logger = logging.getLogger(__name__)

Ack = dict[str, Any]


def _status_event(name: str, status: Status) -> None:
    async def handler(sid: str, *_args: Any) -> Ack:
        try:
            session = await sio.get_session(sid, namespace=CHAT_NAMESPACE)
            user: User | None = session.get("user")
            if user is None:
                raise ChatError(ErrorCode.AUTH_REQUIRED, "Authentication required")
            with metrics.phase("status"):
                shown = await services.presence_set_status(sid=sid, user=user_ref(user), status=status)
        except ChatError as error:
            return error.as_ack()
        except Exception:
            logger.exception("handler %s failed (sid=%s)", name, sid)
            return ChatError(ErrorCode.INTERNAL_ERROR, "Something went wrong on our side").as_ack()
        return {"status": "ok", "presence": shown}

    sio.on(name, namespace=CHAT_NAMESPACE)(handler)


_status_event("presence:away", AWAY)
_status_event("presence:active", ONLINE)
