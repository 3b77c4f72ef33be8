"""The connection registry in Redis: who has which live sockets, on which process.

Keys, all under `chatsite.redis.key("presence")` (written `P` below):

    P:conns:<userId>   hash  "<processId>|<sid>" -> "online" | "away"   one field per tab
    P:status           hash  userId -> "online" | "away"   the state others see;
                             a user is online exactly while they have a field here
    P:pending          zset  userId -> deadline (ms)   no tab left; offline at the deadline
    P:seen             hash  userId -> ms   when a pending user was last connected
    P:procs            zset  processId -> lease deadline (ms)
    P:beat             hash  processId -> last heartbeat (ms)
    P:proc:<processId> set   "<userId>|<sid>"   the tabs held by one process

Why a lease per process and not an expiry per connection: a heartbeat then
costs one command per process, not one per socket, and the sockets of a dead
process are still found (its set) when its lease runs out.

Every transition is one Lua script, so it is atomic across processes: exactly
one caller sees a user come online or go offline and announces it. Times come
from Redis's clock, so processes on different machines agree. The scripts build
per-user key names from the prefix (ARGV[1]); fine on one Redis, not on a Redis
Cluster.

Each function here is one round trip, counted in presence.metrics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import redis
import redis.asyncio as aioredis

from chatsite.redis import async_redis, key, sync_redis
from presence import metrics

Status = Literal["online", "away"]
ONLINE: Status = "online"
AWAY: Status = "away"

_LIB = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The status a user shows: online if any tab is active, away if all are idle,
-- false when no tab is left.
local function aggregate(conns)
  local values = redis.call('HVALS', conns)
  if #values == 0 then return false end
  for _, v in ipairs(values) do
    if v == 'online' then return 'online' end
  end
  return 'away'
end
"""

# ARGV: prefix, userId, processId, sid, tab status, lease ms.
# Registers (or re-registers) a tab. Returns {change, status, registered}:
# change "online" when the user was offline (the caller announces it), "status"
# when the shown status changed; registered 0 when this process had no lease
# (it was swept while alive, or Redis lost its data): the caller re-registers
# all its tabs.
_OPEN = (
    _LIB
    + """
local uid, pid, sid = ARGV[2], ARGV[3], ARGV[4]
local conns = P .. ':conns:' .. uid
redis.call('HSET', conns, pid .. '|' .. sid, ARGV[5])
redis.call('SADD', P .. ':proc:' .. pid, uid .. '|' .. sid)
local registered = 1
if not redis.call('ZSCORE', P .. ':procs', pid) then
  registered = 0
  local now = now_ms()
  redis.call('ZADD', P .. ':procs', now + tonumber(ARGV[6]), pid)
  redis.call('HSET', P .. ':beat', pid, now)
end
-- A reconnect inside the grace period: the pending offline is cancelled.
redis.call('ZREM', P .. ':pending', uid)
local shown = aggregate(conns)
local before = redis.call('HGET', P .. ':status', uid)
local change = ''
if not before then change = 'online' elseif before ~= shown then change = 'status' end
if before ~= shown then redis.call('HSET', P .. ':status', uid, shown) end
return {change, shown, registered}
"""
)

# ARGV: prefix, userId, processId, sid, grace ms.
# Removes a tab. Returns {change, status}: "pending" when it was the user's last
# tab (offline comes at the deadline unless a tab reconnects), "status" when the
# shown status changed (the remaining tabs are all idle).
_CLOSE = (
    _LIB
    + """
local uid, pid, sid = ARGV[2], ARGV[3], ARGV[4]
local conns = P .. ':conns:' .. uid
redis.call('HDEL', conns, pid .. '|' .. sid)
redis.call('SREM', P .. ':proc:' .. pid, uid .. '|' .. sid)
local before = redis.call('HGET', P .. ':status', uid)
if not before then return {'', ''} end
local shown = aggregate(conns)
if not shown then
  local now = now_ms()
  redis.call('ZADD', P .. ':pending', now + tonumber(ARGV[5]), uid)
  redis.call('HSET', P .. ':seen', uid, now)
  return {'pending', before}
end
if shown ~= before then
  redis.call('HSET', P .. ':status', uid, shown)
  return {'status', shown}
end
return {'', shown}
"""
)

# ARGV: prefix, userId or "" for every due user, max users.
# Turns due pending users with no tab into offline users. Returns a flat list
# {userId, lastSeenMs, ...} of exactly the users this call took offline: two
# processes finalizing at once never both announce the same offline.
_FINALIZE = (
    _LIB
    + """
local now = now_ms()
local pending, status, seen = P .. ':pending', P .. ':status', P .. ':seen'
local due
if ARGV[2] ~= '' then
  local deadline = redis.call('ZSCORE', pending, ARGV[2])
  if deadline and tonumber(deadline) <= now then due = {ARGV[2]} else due = {} end
else
  due = redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
end
local out = {}
for _, uid in ipairs(due) do
  redis.call('ZREM', pending, uid)
  if redis.call('HLEN', P .. ':conns:' .. uid) == 0 and redis.call('HDEL', status, uid) == 1 then
    out[#out + 1] = uid
    out[#out + 1] = redis.call('HGET', seen, uid) or tostring(now)
  end
  redis.call('HDEL', seen, uid)
end
return out
"""
)

# ARGV: prefix, max processes.
# Removes the tabs of processes whose lease ran out (they died without
# cleaning up). Users left with no tab become pending with a deadline of now:
# the lease already was their grace. Returns a flat list {userId, status, ...}
# of users whose shown status changed because their active tab died.
_SWEEP = (
    _LIB
    + """
local now = now_ms()
local procs, status = P .. ':procs', P .. ':status'
local dead = redis.call('ZRANGEBYSCORE', procs, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, pid in ipairs(dead) do
  local beat = redis.call('HGET', P .. ':beat', pid) or tostring(now)
  local members = redis.call('SMEMBERS', P .. ':proc:' .. pid)
  local touched = {}
  for _, member in ipairs(members) do
    local bar = string.find(member, '|', 1, true)
    local uid = string.sub(member, 1, bar - 1)
    redis.call('HDEL', P .. ':conns:' .. uid, pid .. '|' .. string.sub(member, bar + 1))
    touched[uid] = true
  end
  for uid, _ in pairs(touched) do
    local before = redis.call('HGET', status, uid)
    if before then
      local shown = aggregate(P .. ':conns:' .. uid)
      if not shown then
        redis.call('ZADD', P .. ':pending', now, uid)
        redis.call('HSET', P .. ':seen', uid, beat)
      elseif shown ~= before then
        redis.call('HSET', status, uid, shown)
        out[#out + 1] = uid
        out[#out + 1] = shown
      end
    end
  end
  redis.call('DEL', P .. ':proc:' .. pid)
  redis.call('ZREM', procs, pid)
  redis.call('HDEL', P .. ':beat', pid)
end
return out
"""
)

# ARGV: prefix, processId, lease ms. Renews the lease; returns 0 when there was
# none (first beat, or swept while alive: the caller re-registers its tabs).
_HEARTBEAT = (
    _LIB
    + """
local now = now_ms()
local had = redis.call('ZSCORE', P .. ':procs', ARGV[2])
redis.call('ZADD', P .. ':procs', now + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', P .. ':beat', ARGV[2], now)
if had then return 1 end
return 0
"""
)


class _Script:
    """EVALSHA with a fallback to EVAL, so the script body crosses the wire once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def run(self, *args: Any) -> Any:
        client = async_redis()
        metrics.count(metrics.REDIS_COMMANDS)
        try:
            return await client.evalsha(self.sha, 0, _prefix(), *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(self.source, 0, _prefix(), *args)


_open, _close, _finalize, _sweep, _heartbeat = map(_Script, (_OPEN, _CLOSE, _FINALIZE, _SWEEP, _HEARTBEAT))

# How many dead processes or due users one script handles, so that one script
# never blocks Redis for long; the next round takes the rest.
BATCH = 500


def _prefix() -> str:
    return key("presence")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Transition:
    """What a registry write changed for the user, as others see it."""

    change: Literal["", "online", "status", "pending"]
    status: str  # the shown status after the write ("" when the user was not shown)


async def tab_open(
    *, user_id: str, process_id: str, sid: str, status: Status, lease_ms: int
) -> tuple[Transition, bool]:
    """Register a tab (or change its status). Returns the transition and whether
    the process still held its lease (False: re-register every local tab)."""
    change, shown, registered = await _open.run(user_id, process_id, sid, status, lease_ms)
    return Transition(_text(change), _text(shown)), bool(registered)  # type: ignore[arg-type]


async def tab_close(*, user_id: str, process_id: str, sid: str, grace_ms: int) -> Transition:
    change, shown = await _close.run(user_id, process_id, sid, grace_ms)
    return Transition(_text(change), _text(shown))  # type: ignore[arg-type]


async def users_finalize(*, user_id: str | None = None) -> list[tuple[str, int]]:
    """Take due pending users offline: `[(userId, lastSeenMs)]`, each reported to
    exactly one caller. With `user_id`, only that user (if due)."""
    flat = await _finalize.run(user_id or "", BATCH)
    return [(_text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


async def processes_sweep() -> list[tuple[str, str]]:
    """Drop the tabs of processes whose lease ran out: `[(userId, newStatus)]` for
    users still connected elsewhere whose shown status changed."""
    flat = await _sweep.run(BATCH)
    return [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]


async def process_heartbeat(*, process_id: str, lease_ms: int) -> bool:
    """Renew the lease. False when it had run out (or never existed)."""
    return bool(await _heartbeat.run(process_id, lease_ms))


async def process_tabs(*, process_id: str) -> list[tuple[str, str]]:
    """`[(userId, sid)]` of the tabs the registry holds for a process."""
    metrics.count(metrics.REDIS_COMMANDS)
    members = await async_redis().smembers(f"{_prefix()}:proc:{process_id}")
    return [tuple(_text(member).split("|", 1)) for member in members]  # type: ignore[misc]


async def statuses(user_ids: list[str]) -> dict[str, str]:
    """The shown status of each online user among `user_ids` (offline users are absent)."""
    if not user_ids:
        return {}
    metrics.count(metrics.REDIS_COMMANDS)
    client: aioredis.Redis = async_redis()
    values = await client.hmget(f"{_prefix()}:status", user_ids)
    return {uid: _text(v) for uid, v in zip(user_ids, values, strict=True) if v is not None}


def statuses_sync(user_ids: list[str]) -> dict[str, str]:
    """`statuses` for sync callers (REST views)."""
    if not user_ids:
        return {}
    metrics.count(metrics.REDIS_COMMANDS)
    values = sync_redis().hmget(f"{_prefix()}:status", user_ids)
    return {uid: _text(v) for uid, v in zip(user_ids, values, strict=True) if v is not None}
