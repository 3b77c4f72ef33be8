"""Sliding-window rate limits per user, shared by every process through Redis.

Each kind of attempt counts in a named bucket with its own limit and window
(BUCKETS): messages, and every other client event of /chat.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.errors import ChatError, ErrorCode
from chatsite.redis import async_redis, key, sync_redis

logger = logging.getLogger(__name__)

# One round trip, atomic, for n attempts at once (the socket send path admits a
# whole batch of sends in one call): for each, drop entries older than the
# window, count, and admit (recording the attempt) only while under the limit.
# Attempts of one user in the same call count against each other, in order.
# Redis's own clock keeps processes on different machines in agreement.
# KEYS: n rate keys, then optionally n keys that are only reported on (do they
# exist?): the send path learns in the same round trip whether the sender's
# typing indicator is up. ARGV: window ms, limit, then n entry names.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local n = #ARGV - 2
local answers = {}
for i = 1, n do
  local k = KEYS[i]
  local watched = 0
  if KEYS[n + i] then watched = redis.call('EXISTS', KEYS[n + i]) end
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  if redis.call('ZCARD', k) >= limit then
    local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    table.insert(answers, {0, tonumber(oldest[2]) + window - now, watched})
  else
    redis.call('ZADD', k, now, ARGV[2 + i])
    redis.call('PEXPIRE', k, window)
    table.insert(answers, {1, 0, watched})
  end
end
return answers
"""


@dataclass(frozen=True)
class Bucket:
    """A named window: at most `limit` attempts per user in `window_seconds`.
    Both come from settings at each call (tests override them)."""

    name: str
    limit_setting: str
    window_setting: str
    # How a refusal names what was too fast ("You are sending too fast").
    doing: str

    @property
    def limit(self) -> int:
        return int(getattr(settings, self.limit_setting))

    @property
    def window_seconds(self) -> int:
        return int(getattr(settings, self.window_setting))


BUCKETS = {
    bucket.name: bucket
    for bucket in (
        Bucket("messages", "CHAT_RATE_LIMIT_MESSAGES", "CHAT_RATE_LIMIT_WINDOW", "sending"),
        Bucket("joins", "CHAT_RATE_LIMIT_JOINS", "CHAT_RATE_LIMIT_EVENT_WINDOW", "joining rooms"),
        Bucket("leaves", "CHAT_RATE_LIMIT_LEAVES", "CHAT_RATE_LIMIT_EVENT_WINDOW", "leaving rooms"),
        Bucket("typing", "CHAT_RATE_LIMIT_TYPING", "CHAT_RATE_LIMIT_EVENT_WINDOW", "sending typing indicators"),
        Bucket("reads", "CHAT_RATE_LIMIT_READS", "CHAT_RATE_LIMIT_EVENT_WINDOW", "marking messages read"),
        Bucket("presence", "CHAT_RATE_LIMIT_PRESENCE", "CHAT_RATE_LIMIT_EVENT_WINDOW", "changing your status"),
    )
}


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_seconds: float
    # The entry recorded for an admitted attempt (None when refused, or when
    # Redis was unreachable), so it can be given back.
    entry: str | None = None
    # Whether the watched key existed (True when Redis was unreachable: unknown).
    watched_exists: bool = False


def rate_limit_hit(*, user_id: int, bucket: str = "messages") -> RateDecision:
    """Record one attempt by the user and say whether it is within the bucket's limit."""
    entries = [_new_entry()]
    try:
        answers = sync_redis().eval(_SLIDING_WINDOW, 1, *_script_args([user_id], bucket, entries, None))
    except (RedisConnectionError, RedisTimeoutError):
        return _fail_open([user_id])[0]
    return _decisions(answers, entries)[0]


async def rate_limit_hit_async(*, user_id: int, bucket: str) -> RateDecision:
    """rate_limit_hit from the event loop (the socket events' limits)."""
    (decision,) = await rate_limit_hit_many_async(user_ids=[user_id], bucket=bucket)
    return decision


async def rate_limit_hit_many_async(
    *, user_ids: Sequence[int], watch: Sequence[str] | None = None, bucket: str = "messages"
) -> list[RateDecision]:
    """rate_limit_hit for several attempts, in order, from the event loop (the
    socket send path), in one round trip; also says whether each key of
    `watch` (one per attempt) exists."""
    entries = [_new_entry() for _ in user_ids]
    n_keys = len(user_ids) * (1 if watch is None else 2)
    try:
        answers = await async_redis().eval(_SLIDING_WINDOW, n_keys, *_script_args(user_ids, bucket, entries, watch))
    except (RedisConnectionError, RedisTimeoutError):
        return _fail_open(user_ids)
    return _decisions(answers, entries)


async def rate_limit_refund_many_async(charges: Sequence[tuple[int, RateDecision]], bucket: str = "messages") -> None:
    """Give back admitted attempts, (user id, decision) each, that turned out
    not to be new messages (refused, or resends): only new messages count
    against the limit. One round trip."""
    async with async_redis().pipeline(transaction=False) as pipe:
        for user_id, decision in charges:
            if decision.entry is not None:
                pipe.zrem(key("rate", bucket, user_id), decision.entry)
        await pipe.execute()


def _new_entry() -> str:
    return f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"


def _script_args(
    user_ids: Sequence[int], bucket: str, entries: list[str], watch: Sequence[str] | None
) -> list[str | int]:
    limits = BUCKETS[bucket]
    keys = [key("rate", bucket, user_id) for user_id in user_ids]
    return [*keys, *(watch or ()), limits.window_seconds * 1000, limits.limit, *entries]


def _decisions(answers: list[list[int]], entries: list[str]) -> list[RateDecision]:
    return [
        RateDecision(
            allowed=bool(allowed),
            retry_after_seconds=max(0, int(retry_ms)) / 1000,
            entry=entry if allowed else None,
            watched_exists=bool(watched),
        )
        for (allowed, retry_ms, watched), entry in zip(answers, entries, strict=True)
    ]


def _fail_open(user_ids: Sequence[int]) -> list[RateDecision]:
    # While Redis is unreachable (a restart takes seconds) the chat keeps
    # accepting messages, which PostgreSQL stores durably, and events; only the
    # flood protection lapses, and the outage is in the log.
    logger.warning("rate limit unavailable (Redis unreachable): admitting users %s", list(user_ids), exc_info=True)
    return [RateDecision(allowed=True, retry_after_seconds=0, watched_exists=True) for _ in user_ids]


def too_fast(bucket: str, decision: RateDecision) -> ChatError:
    """The refusal of an attempt over the bucket's limit."""
    return ChatError(
        ErrorCode.RATE_LIMITED,
        f"You are {BUCKETS[bucket].doing} too fast: try again in {decision.retry_after_seconds:.1f} s",
    )
