"""The ceiling of our stack: python-socketio alone, no Django, no database, no Redis.

Served by the same uvicorn with the same flags as chatsite.asgi. It answers
the /chat events the workload uses with the same shapes as our server: a
message object of the same fields, emitted to the room, then the ack. What it
skips is exactly our overhead: auth against the database, access checks, the
transaction that stores the message, and the fan-out through Redis.

    uvicorn bench.bare_server:app --ws-per-message-deflate false --lifespan off
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import socketio

NAMESPACE = "/chat"

# Same engine settings as chat/sockets/server.py.
sio = socketio.AsyncServer(
    async_mode="asgi",
    max_http_buffer_size=1_000_000,
    ping_interval=20,
    ping_timeout=20,
    logger=False,
    engineio_logger=False,
)
app = socketio.ASGIApp(sio, socketio_path="socket.io")

_user_ids = itertools.count(1)
_message_ids = itertools.count(1)
_room_seq: dict[str, int] = {}


@sio.on("connect", namespace=NAMESPACE)
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    user_id = str(next(_user_ids))
    await sio.save_session(sid, {"userId": user_id, "username": f"user{user_id}"}, namespace=NAMESPACE)


@sio.on("room:join", namespace=NAMESPACE)
async def room_join(sid: str, room_id: Any = None) -> dict[str, Any]:
    if isinstance(room_id, dict):
        room_id = room_id.get("roomId")
    if not isinstance(room_id, str):
        return {"status": "error", "error": "roomId must be a string", "code": "invalid"}
    await sio.enter_room(sid, f"room:{room_id}", namespace=NAMESPACE)
    history = {"roomId": room_id, "messages": [], "hasMore": False}
    await sio.emit("room:history", history, to=sid, namespace=NAMESPACE)
    return {"status": "ok", **history}


@sio.on("chat:message", namespace=NAMESPACE)
async def chat_message(sid: str, payload: Any = None) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("roomId"), str):
        return {"status": "error", "error": "bad payload", "code": "invalid"}
    room_id = payload["roomId"]
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        return {"status": "error", "error": "text must not be empty", "code": "invalid"}
    user = await sio.get_session(sid, namespace=NAMESPACE)
    seq = _room_seq[room_id] = _room_seq.get(room_id, 0) + 1
    message_id = str(next(_message_ids))
    message = {
        "id": message_id,
        "roomId": room_id,
        "seq": seq,
        "userId": user["userId"],
        "username": user["username"],
        "text": text.strip(),
        "replyTo": None,
        "reply": None,
        "clientId": payload.get("clientId"),
        "attachment": None,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "editedAt": None,
        "deletedAt": None,
        "readBy": [user["userId"]],
    }
    await sio.emit("chat:message", message, to=f"room:{room_id}", namespace=NAMESPACE)
    return {"status": "ok", "messageId": message_id, "seq": seq}
