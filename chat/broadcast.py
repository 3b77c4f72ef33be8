"""Fan-out: the only module that emits to sockets.

Every emit goes through the Socket.IO server's client manager, whose transport
is the Channels layer (chat/sockets/manager.py): local sockets get the event at
once and every other process gets it through Redis. Sync callers (services
after commit, REST views, the admin) come through `_emit_from_sync`.

Audiences: `room:<roomId>` holds the sockets joined to a room, `user:<userId>`
every socket of one user. "Others in the room" (typing, receipts, joins and
leaves) is the room's audience without any socket of the user it is about:
`skip_user`, which every process applies to its own sockets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from chat import selectors
from chat.models import Message, Room
from chat.schemas import MessagePayload, message_payload, user_ref
from chat.sockets.manager import ChannelLayerManager, skip_audience
from chat.sockets.server import CHAT_NAMESPACE, sio

logger = logging.getLogger(__name__)


def room_audience(room_id: str) -> str:
    return f"room:{room_id}"


def user_audience(user_id: int | str) -> str:
    return f"user:{user_id}"


async def emit(
    event: str, data: Any, *, to: str, skip_sid: str | None = None, skip_user: int | str | None = None
) -> None:
    """`event` to the audience `to`, but not to `skip_sid`, nor to any socket
    of `skip_user` (on every process)."""
    skip: list[str] = [] if skip_sid is None else [skip_sid]
    if skip_user is not None:
        skip.append(skip_audience(user_audience(skip_user)))
    await sio.emit(event, data, to=to, namespace=CHAT_NAMESPACE, skip_sid=skip or None)


# --- From sync code -------------------------------------------------------------
#
# Services broadcast from `on_commit`, on the ORM thread. In a server process
# the fan-out is handed to the server's event loop and the thread goes back to
# the next database call at once: waiting for the emit (local sockets plus a
# Redis publish) held the one thread-sensitive ORM thread of the process for a
# sizeable part of every send. One FIFO on the loop runs the handed-over steps
# one at a time, so they reach sockets and Redis in the order the commits made
# them (seq order within a room). Elsewhere (a process with no socket yet, a
# management command, a test) the step runs through async_to_sync.

_fifo: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] | None = None
_fifo_task: asyncio.Task[None] | None = None


def run_from_sync(what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run an async fan-out step from sync code (an on_commit hook), in commit order."""
    # A broadcast that fails must not undo or fail the committed write that
    # caused it: clients see the gap through `seq` and fetch what they missed.
    loop = getattr(sio.manager, "loop", None)
    if loop is not None and loop.is_running() and not _running_on(loop):
        loop.call_soon_threadsafe(_enqueue, what, step)
        return
    try:
        async_to_sync(step)()
    except Exception:
        logger.exception("broadcast of %s failed", what)


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _enqueue(what: str, step: Callable[[], Awaitable[None]]) -> None:
    """On the server loop: queue a step behind the earlier ones."""
    global _fifo, _fifo_task
    if _fifo is None or _fifo_task is None or _fifo_task.done():
        _fifo = asyncio.Queue()
        _fifo_task = asyncio.get_running_loop().create_task(_drain(_fifo))
    _fifo.put_nowait((what, step))


async def _drain(fifo: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
    while True:
        what, step = await fifo.get()
        try:
            await step()
        except Exception:
            logger.exception("broadcast of %s failed", what)


def _emit_from_sync(
    event: str, data: Any, *, to: str, skip_sid: str | None = None, skip_user: int | str | None = None
) -> None:
    run_from_sync(
        f"{event} to {to}", functools.partial(emit, event, data, to=to, skip_sid=skip_sid, skip_user=skip_user)
    )


# --- Messages -----------------------------------------------------------------


def message_created(message: Message) -> None:
    """To every socket joined to the room, the sender's included, on every process."""
    _emit_from_sync(
        "chat:message", message_payload(message, [str(message.author_id)]), to=room_audience(message.room_id)
    )


def messages_created(payloads: list[MessagePayload]) -> asyncio.Future[list[None]]:
    """message_created from the event loop, for messages stored by
    chat/message_writer.py, given in seq order per room.

    Starts one emit per message now, in the order given, and returns what to
    await for their end. All at once, so the bus carries them in one publish;
    they still leave in this order, since each emit reaches every local socket
    and hands its message to the bus in its first step, without pausing
    (chat/sockets/manager.py), and the loop runs those first steps in the
    order the emits were started.
    """
    return asyncio.gather(*(emit("chat:message", p, to=room_audience(p["roomId"])) for p in payloads))


def message_updated(message: Message, read_by: list[str], *, read_count: int) -> None:
    payload = message_payload(message, read_by, read_count=read_count)
    _emit_from_sync("chat:message-updated", payload, to=room_audience(message.room_id))


def message_deleted(*, room_id: str, message_id: int) -> None:
    _emit_from_sync(
        "chat:message-deleted", {"roomId": room_id, "messageId": str(message_id)}, to=room_audience(room_id)
    )


def receipt_updated(*, user: User, room_id: str, message_id: int) -> None:
    """To the others in the room: not to the reader's own tabs."""
    data = {"userId": str(user.pk), "messageId": str(message_id), "roomId": room_id}
    _emit_from_sync("chat:read", data, to=room_audience(room_id), skip_user=user.pk)


# --- Rooms --------------------------------------------------------------------


async def history_sent(sid: str, history: dict[str, Any]) -> None:
    """`room:history` to the one socket that joined."""
    await sio.emit("room:history", history, to=sid, namespace=CHAT_NAMESPACE)


def user_joined_room(*, user: User, room_id: str) -> None:
    """To the others in the room."""
    _emit_from_sync(
        "room:user-joined", {**user_ref(user), "roomId": room_id}, to=room_audience(room_id), skip_user=user.pk
    )


def user_left_room(*, user: User, room_id: str) -> None:
    """To the others in the room."""
    _emit_from_sync(
        "room:user-left", {**user_ref(user), "roomId": room_id}, to=room_audience(room_id), skip_user=user.pk
    )


def room_added(*, room: Room, user_ids: list[int]) -> None:
    """Tell users someone else made them members (a 1:1 chat opened with them,
    a private room created with them in it), so their room lists update live."""
    data = {"roomId": room.pk, "name": room.name, "visibility": room.visibility}
    for user_id in user_ids:
        _emit_from_sync("room:added", data, to=user_audience(user_id))


def room_updated(room: Room) -> None:
    data = {"roomId": room.pk, "name": room.name, "topic": room.topic, "slowModeSeconds": room.slow_mode_seconds}
    _emit_from_sync("room:updated", data, to=room_audience(room.pk))


def user_removed_from_room(*, user: User, room_id: str, banned: bool) -> None:
    """Take every socket of the user out of the room, on every process, tell the
    user (`room:banned` or `room:removed`), then tell the room."""
    run_from_sync(
        f"removal of user {user.pk} from room {room_id}",
        functools.partial(
            sio.manager.move_audience, user_audience(user.pk), CHAT_NAMESPACE, leave=room_audience(room_id)
        ),
    )
    _emit_from_sync("room:banned" if banned else "room:removed", {"roomId": room_id}, to=user_audience(user.pk))
    _emit_from_sync("room:user-left", {**user_ref(user), "roomId": room_id}, to=room_audience(room_id))


def room_deleted(*, room_id: str, user_ids: list[int]) -> None:
    """Take every socket out of a deleted room, on every process, then tell each
    member (`room:deleted`), so every tab drops the room. In that order: once
    the sockets are out, nothing more of the room reaches them."""
    audience = room_audience(room_id)
    run_from_sync(
        f"closing room {room_id}",
        functools.partial(sio.manager.move_audience, audience, CHAT_NAMESPACE, leave=audience),
    )
    # One emit per member: a rare admin action, and members not joined to the
    # room (other tabs) must hear it too.
    for user_id in user_ids:
        _emit_from_sync("room:deleted", {"roomId": room_id}, to=user_audience(user_id))


def user_sockets_closed(*, user_id: int) -> None:
    """Disconnect every socket of the user on every process (site ban)."""
    run_from_sync(
        f"closing the sockets of user {user_id}",
        functools.partial(sio.manager.disconnect_audience, user_audience(user_id), CHAT_NAMESPACE),
    )


# --- Recovery -----------------------------------------------------------------


async def sync_required(manager: ChannelLayerManager) -> None:
    """`sync:required {rooms: [{roomId, lastSeq}]}` to every socket of this
    process joined to a room, with each of its rooms, after the bus dropped
    broadcasts (chat/sockets/manager.py says when). Only this process's sockets
    (the emit skips the bus): other processes judge their own subscriptions.
    The last seqs are read in one query for every room at once."""
    rooms_of: dict[str, list[str]] = {}
    prefix = room_audience("")
    for audience, participants in list(manager.rooms.get(CHAT_NAMESPACE, {}).items()):
        if not isinstance(audience, str) or not audience.startswith(prefix):
            continue
        for sid in participants:
            rooms_of.setdefault(sid, []).append(audience.removeprefix(prefix))
    if not rooms_of:
        return
    room_ids = {room_id for room_ids in rooms_of.values() for room_id in room_ids}
    last_seqs = await database_sync_to_async(selectors.room_last_seqs)(room_ids=room_ids)
    for sid, ids in rooms_of.items():
        rooms = [{"roomId": room_id, "lastSeq": last_seqs[room_id]} for room_id in sorted(ids) if room_id in last_seqs]
        if rooms:
            await manager.emit("sync:required", {"rooms": rooms}, namespace=CHAT_NAMESPACE, to=sid, ignore_queue=True)
    logger.warning("sync:required sent to %d sockets for %d rooms", len(rooms_of), len(last_seqs))
