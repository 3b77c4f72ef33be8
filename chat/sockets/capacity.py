"""Caps on open /chat sockets per user and per client address, over every process.

Keys, under `chatsite.redis.key("sockets")` (written `S` below):

    S:procs           zset  processId -> lease deadline (ms)
    S:user:<userId>   hash  "<processId>|<sid>" -> 1   one field per open socket
    S:addr:<address>  hash  the same, per client address

A socket counts while its field exists and its process's lease runs. A socket
that closes removes its fields; the sockets of a process that dies without
cleaning up stop counting when its lease runs out (CHAT_SOCKET_LEASE_SECONDS),
and the admission script drops their fields as it meets them. One lease per
process, renewed every third of its length, so a heartbeat is one command
however many sockets the process holds (as presence/registry.py does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.errors import ChatError, ErrorCode
from chatsite.redis import async_redis, key

logger = logging.getLogger(__name__)

TOO_MANY_FOR_USER = "Too many open connections for this account: close another tab first"
TOO_MANY_FOR_ADDRESS = "Too many open connections from this address"

# KEYS: procs, then the count hashes. ARGV: processId, field, lease ms, key ttl
# ms, then one limit per count hash. Returns 0 (admitted, fields written) or
# the 1-based index of the first count hash that is full. The hashes' expiry
# only bounds what a crashed process leaves behind for users who never return;
# every admission renews it.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local procs, pid, field = KEYS[1], ARGV[1], ARGV[2]
redis.call('ZADD', procs, now + tonumber(ARGV[3]), pid)
for i = 2, #KEYS do
  local alive = 0
  for _, f in ipairs(redis.call('HKEYS', KEYS[i])) do
    local bar = string.find(f, '|', 1, true)
    local deadline = bar and redis.call('ZSCORE', procs, string.sub(f, 1, bar - 1))
    if deadline and tonumber(deadline) > now then
      alive = alive + 1
    else
      redis.call('HDEL', KEYS[i], f)
    end
  end
  if alive >= tonumber(ARGV[3 + i]) then return i - 1 end
end
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], field, 1)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[4]))
end
return 0
"""

# KEYS: procs. ARGV: processId, lease ms. Renews the lease and forgets
# processes dead for a while; returns 0 when the lease had run out (or never
# existed): others may have dropped this process's fields, so it writes them again.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local before = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * tonumber(ARGV[2]))
if before and tonumber(before) > now then return 1 end
return 0
"""

_KEY_TTL_MS = 24 * 3600 * 1000

# This process's admitted sockets: sid -> (field, count keys).
_local: dict[str, tuple[str, list[str]]] = {}
# Fields whose removal failed (Redis unreachable): retried on each beat, for
# this process's lease would otherwise keep them counting for as long as it lives.
_unreleased: dict[str, list[str]] = {}
_beat: asyncio.Task[None] | None = None
_process: tuple[int, str] | None = None


def _process_id() -> str:
    global _process
    if _process is None or _process[0] != os.getpid():
        _process = (os.getpid(), f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    return _process[1]


def _lease_ms() -> int:
    return settings.CHAT_SOCKET_LEASE_SECONDS * 1000


def client_address(environ: dict[str, Any]) -> str:
    """The address the socket comes from: the peer of the ASGI scope, which
    uvicorn rewrites from X-Forwarded-For only for connections from
    TRUSTED_PROXY_IPS (chatsite/serve.py), the one home of that rule.
    engine.io's own REMOTE_ADDR is a placeholder."""
    scope = environ.get("asgi.scope") or {}
    client = scope.get("client")
    address = str(client[0]) if client else str(environ.get("REMOTE_ADDR", ""))
    return address or "unknown"


async def sockets_admit(*, sid: str, user_id: int, address: str) -> None:
    """Count a new socket of `user_id` from `address`, or refuse it (ChatError
    `rate_limited`, the connect_error's message) when either is at its cap."""
    field = f"{_process_id()}|{sid}"
    keys = [key("sockets", "user", user_id), key("sockets", "addr", address)]
    limits = [settings.CHAT_MAX_SOCKETS_PER_USER, settings.CHAT_MAX_SOCKETS_PER_ADDRESS]
    try:
        full = await async_redis().eval(
            _ADMIT,
            1 + len(keys),
            key("sockets", "procs"),
            *keys,
            _process_id(),
            field,
            _lease_ms(),
            _KEY_TTL_MS,
            *limits,
        )
    except (RedisConnectionError, RedisTimeoutError):
        # As the rate limits: an outage lapses the cap, it does not lock everyone out.
        logger.warning("socket caps unavailable (Redis unreachable): admitting sid %s", sid, exc_info=True)
        full = 0
    if full:
        raise ChatError(ErrorCode.RATE_LIMITED, TOO_MANY_FOR_USER if full == 1 else TOO_MANY_FOR_ADDRESS)
    _local[sid] = (field, keys)
    _start_heartbeat()


async def sockets_release(*, sid: str) -> None:
    """A socket admitted here closed: it stops counting."""
    admitted = _local.pop(sid, None)
    if admitted is None:
        return
    field, keys = admitted
    try:
        await _remove(field, keys)
    except (RedisConnectionError, RedisTimeoutError):
        logger.warning("releasing socket %s from the caps failed; retrying on the next beat", sid)
        _unreleased[field] = keys


async def _remove(field: str, keys: list[str]) -> None:
    async with async_redis().pipeline(transaction=False) as pipe:
        for count_key in keys:
            pipe.hdel(count_key, field)
        await pipe.execute()


def _start_heartbeat() -> None:
    global _beat
    if _beat is None or _beat.done():
        _beat = asyncio.get_running_loop().create_task(_heartbeat_forever())


async def _heartbeat_forever() -> None:
    while True:
        await asyncio.sleep(settings.CHAT_SOCKET_LEASE_SECONDS / 3)
        try:
            await _heartbeat()
        except Exception:
            logger.warning("renewing the socket caps' lease failed", exc_info=True)


async def _heartbeat() -> None:
    redis = async_redis()
    held = await redis.eval(_HEARTBEAT, 1, key("sockets", "procs"), _process_id(), _lease_ms())
    for field, keys in list(_unreleased.items()):
        await _remove(field, keys)
        del _unreleased[field]
    if not held and _local:
        # The lease had lapsed (a stalled loop, Redis lost its data): write
        # this process's sockets back, over the caps if need be; they are open.
        async with redis.pipeline(transaction=False) as pipe:
            for field, keys in list(_local.values()):
                for count_key in keys:
                    pipe.hset(count_key, field, 1)
                    pipe.pexpire(count_key, _KEY_TTL_MS)
            await pipe.execute()
