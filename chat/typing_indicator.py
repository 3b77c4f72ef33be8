"""Typing indicators: ephemeral, never stored in the database.

The state "user U is typing in room R" is a Redis key with a 5 s expiry, shared
by every process, so a send or a disconnect on any process can clear it. The
process that received `isTyping: true` also arms a local timer that clears a
stale indicator; a later refresh replaces the key's token, which disarms it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from django.conf import settings

from chat import broadcast
from chat.schemas import UserRef
from chatsite.redis import async_redis, key

logger = logging.getLogger(__name__)

# Strong references: the event loop keeps only weak ones to running tasks.
_timers: set[asyncio.Task[None]] = set()


def typing_key(room_id: str, user_id: str) -> str:
    return key("typing", room_id, user_id)


async def _announce(user: UserRef, room_id: str, is_typing: bool) -> None:
    """To the others in the room: none of the typist's own sockets, on any process."""
    data = {**user, "roomId": room_id, "isTyping": is_typing}
    await broadcast.emit("chat:typing", data, to=broadcast.room_audience(room_id), skip_user=user["userId"])


async def typing_started(*, user: UserRef, room_id: str) -> None:
    timeout = settings.CHAT_TYPING_TIMEOUT_SECONDS
    token = uuid.uuid4().hex
    redis = async_redis()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.getset(typing_key(room_id, user["userId"]), token)
        # The key outlives the timer by a margin so the timer always finds it;
        # the expiry itself only cleans up after a process that died.
        pipe.expire(typing_key(room_id, user["userId"]), timeout + 2)
        previous, _ = await pipe.execute()
    if previous is None:  # a refresh while already typing tells nobody anything new
        await _announce(user, room_id, True)
    task = asyncio.create_task(_expire_later(user=user, room_id=room_id, token=token, delay=timeout))
    _timers.add(task)
    task.add_done_callback(_timer_done)


def _timer_done(task: asyncio.Task[None]) -> None:
    _timers.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("clearing a stale typing indicator failed", exc_info=task.exception())


async def typing_stopped(*, user: UserRef, room_id: str) -> None:
    """Clear the indicator if it is up (explicit stop, a send, a disconnect)."""
    if await async_redis().delete(typing_key(room_id, user["userId"])):
        await _announce(user, room_id, False)


# Compare-and-delete, so a timer never clears an indicator a newer refresh set.
_DELETE_IF_TOKEN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def _expire_later(*, user: UserRef, room_id: str, token: str, delay: float) -> None:
    await asyncio.sleep(delay)
    if await async_redis().eval(_DELETE_IF_TOKEN, 1, typing_key(room_id, user["userId"]), token):
        await _announce(user, room_id, False)
