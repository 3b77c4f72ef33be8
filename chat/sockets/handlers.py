"""The /chat namespace: parse, check access, call one service, answer.

Every handler answers an ack of protocol.md: `{"status": "ok", ...}` or
`{"status": "error", "error", "code"}`. Nothing a client sends can raise out of
a handler: rule breaks are ChatErrors, anything else is logged and answered
`internal_error`, and the socket stays up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from chat import access, broadcast, message_writer, selectors, services, typing_indicator
from chat.errors import ChatError, ErrorCode
from chat.schemas import (
    HISTORY_ON_JOIN,
    HISTORY_SINCE_MAX,
    parse_join,
    parse_leave,
    parse_read,
    parse_send,
    parse_typing,
    user_ref,
)
from chat.sockets import capacity
from chat.sockets.auth import authenticate_socket
from chat.sockets.server import CHAT_NAMESPACE, sio
from presence import sockets as presence_sockets

logger = logging.getLogger(__name__)

Ack = dict[str, Any]
Handler = Callable[[str, Any], Awaitable[Ack | None]]


def chat_event(name: str) -> Callable[[Handler], Handler]:
    """Register `fn(sid, payload)` for a /chat event and turn its outcome into an ack."""

    def decorator(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(sid: str, *args: Any) -> Ack:
            # Clients may send no argument or several; only the first counts.
            payload = args[0] if args else None
            try:
                result = await fn(sid, payload)
            except ChatError as error:
                return error.as_ack()
            except Exception:
                logger.exception(
                    "/chat %s failed: sid=%s user=%s payload=%.200r",
                    name,
                    sid,
                    await _user_id_or_none(sid),
                    payload,
                )
                return ChatError(ErrorCode.INTERNAL_ERROR, "Something went wrong on our side").as_ack()
            return {"status": "ok", **(result or {})}

        sio.on(name, namespace=CHAT_NAMESPACE)(handler)
        return fn

    return decorator


async def _user_id_or_none(sid: str) -> object:
    try:
        return (await sio.get_session(sid, namespace=CHAT_NAMESPACE))["user"].pk
    except Exception:
        return None


async def _user(sid: str) -> User:
    session = await sio.get_session(sid, namespace=CHAT_NAMESPACE)
    user: User = session["user"]
    return user


# --- connect / disconnect -------------------------------------------------------


@sio.on("connect", namespace=CHAT_NAMESPACE)
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    try:
        user = await database_sync_to_async(authenticate_socket)(environ, auth)
        await capacity.sockets_admit(sid=sid, user_id=int(user.pk), address=capacity.client_address(environ))
    except ChatError as error:
        # socketio's own exception: the builtin one reaches the client as a
        # generic "Connection refused by server" instead of the contract's text.
        raise socketio.exceptions.ConnectionRefusedError(error.message) from None
    except Exception:
        logger.exception("/chat connect failed: sid=%s", sid)
        raise socketio.exceptions.ConnectionRefusedError("Something went wrong on our side") from None
    try:
        await sio.save_session(sid, {"user": user, "typing_in": set()}, namespace=CHAT_NAMESPACE)
        await sio.enter_room(sid, broadcast.user_audience(user.pk), namespace=CHAT_NAMESPACE)
    except BaseException:
        # A refused connect never reaches `disconnect`.
        await capacity.sockets_release(sid=sid)
        raise
    await presence_sockets.socket_connected(sid=sid, user=user)


@sio.on("disconnect", namespace=CHAT_NAMESPACE)
async def disconnect(sid: str, *_reason: Any) -> None:
    try:
        await capacity.sockets_release(sid=sid)
    except Exception:
        logger.exception("releasing sid %s from the socket caps failed", sid)
    try:
        session = await sio.get_session(sid, namespace=CHAT_NAMESPACE)
    except KeyError:
        return
    user = session.get("user")
    if user is None:
        return
    for room_id in list(session.get("typing_in", ())):
        try:
            await typing_indicator.typing_stopped(user=user_ref(user), room_id=room_id)
        except Exception:
            logger.exception("clearing typing of user %s in %s on disconnect failed", user.pk, room_id)
    try:
        await presence_sockets.socket_disconnected(sid=sid, user=user)
    except Exception:
        logger.exception("presence cleanup for user %s (sid %s) failed", user.pk, sid)


# --- rooms ----------------------------------------------------------------------


@database_sync_to_async
def _join(user: User, room_id: str) -> None:
    room = access.access_room_for_join(user, room_id)
    services.room_join(user=user, room=room)


@database_sync_to_async
def _history(user: User, room_id: str, since: int | None) -> dict[str, Any]:
    """The join's history, after checking access again. `hasMore`: newer
    messages than these remain (only after `since`, past 500); `hasMoreBefore`:
    older ones exist (only without `since`; page back with REST `before=`)."""
    room = access.access_room_for_join(user, room_id)
    if since is None:
        messages, older = selectors.message_list_for_room(room=room, limit=HISTORY_ON_JOIN)
        return {"roomId": room.pk, "messages": selectors.payloads(messages), "hasMore": False, "hasMoreBefore": older}
    messages, newer = selectors.message_list_for_room(room=room, after=since, limit=HISTORY_SINCE_MAX)
    return {"roomId": room.pk, "messages": selectors.payloads(messages), "hasMore": newer, "hasMoreBefore": False}


@chat_event("room:join")
async def room_join(sid: str, payload: Any) -> Ack:
    request = parse_join(payload)
    user = await _user(sid)
    audience = broadcast.room_audience(request.room_id)
    # Check, then enter: a refused join never has the socket in the room, not
    # even for a moment (an outsider with many joins in flight would hear it).
    await _join(user, request.room_id)
    # Then check again, after entering. A ban or removal moves the user's
    # sockets out only after its commit, so a ban committed between the first
    # check and the enter is either met by that move or seen by this check,
    # which takes the socket out again. Entering before the history read also
    # means a message committed meanwhile arrives twice (clients dedupe by id)
    # instead of never.
    await sio.enter_room(sid, audience, namespace=CHAT_NAMESPACE)
    try:
        history = await _history(user, request.room_id, request.since)
    except BaseException:
        await sio.leave_room(sid, audience, namespace=CHAT_NAMESPACE)
        raise
    await broadcast.history_sent(sid, history)
    return history


@database_sync_to_async
def _leave(user: User, room_id: str, *, announce: bool) -> None:
    room = access.access_room(user, room_id)
    if announce:
        services.room_leave(user=user, room=room)


@chat_event("room:leave")
async def room_leave(sid: str, payload: Any) -> Ack:
    room_id = parse_leave(payload)
    user = await _user(sid)
    audience = broadcast.room_audience(room_id)
    # Only a socket that was in the room announces a departure: a leave from
    # anyone else (never joined, or moved out by a ban) tells nobody anything.
    was_in = audience in sio.rooms(sid, namespace=CHAT_NAMESPACE)
    await sio.leave_room(sid, audience, namespace=CHAT_NAMESPACE)
    await _leave(user, room_id, announce=was_in)
    return {}


# --- messages -------------------------------------------------------------------


@chat_event("chat:message")
async def chat_message(sid: str, payload: Any) -> Ack:
    request = parse_send(payload)
    user = await _user(sid)
    result = await message_writer.message_send(
        sender=user,
        room_id=request.room_id,
        text=request.text,
        reply_to_id=request.reply_to,
        client_id=request.client_id,
        sid=sid,
    )
    session = await sio.get_session(sid, namespace=CHAT_NAMESPACE)
    session["typing_in"].discard(request.room_id)
    return {"messageId": str(result.message.pk), "seq": result.message.seq}


@database_sync_to_async
def _check_can_type(user: User, room_id: str) -> None:
    access.access_room_for_send(user, room_id)


@chat_event("chat:typing")
async def chat_typing(sid: str, payload: Any) -> Ack:
    request = parse_typing(payload)
    user = await _user(sid)
    session = await sio.get_session(sid, namespace=CHAT_NAMESPACE)
    if request.is_typing:
        await _check_can_type(user, request.room_id)
        session["typing_in"].add(request.room_id)
        await typing_indicator.typing_started(user=user_ref(user), room_id=request.room_id)
    else:
        session["typing_in"].discard(request.room_id)
        await typing_indicator.typing_stopped(user=user_ref(user), room_id=request.room_id)
    return {}


@database_sync_to_async
def _read(user: User, room_id: str, message_id: int) -> None:
    room = access.access_room_for_read(user, room_id)
    message = access.access_message(user, room, message_id)
    services.receipt_mark_read(user=user, room=room, message=message)


@chat_event("chat:read")
async def chat_read(sid: str, payload: Any) -> Ack:
    request = parse_read(payload)
    user = await _user(sid)
    await _read(user, request.room_id, request.message_id)
    return {}
