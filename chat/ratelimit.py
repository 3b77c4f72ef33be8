"""A sliding-window rate limit per user, shared by every process through Redis."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatsite.redis import key, sync_redis

logger = logging.getLogger(__name__)

# One round trip, atomic: drop entries older than the window, count, and admit
# (recording the attempt) only while under the limit. Redis's own clock keeps
# processes on different machines in agreement.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_seconds: float


def rate_limit_hit(*, user_id: int, bucket: str = "messages") -> RateDecision:
    """Record one send by the user and say whether it is within the limit."""
    window_ms = settings.CHAT_RATE_LIMIT_WINDOW * 1000
    limit = settings.CHAT_RATE_LIMIT_MESSAGES
    member = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    try:
        allowed, retry_ms = sync_redis().eval(
            _SLIDING_WINDOW, 1, key("rate", bucket, user_id), window_ms, limit, member
        )
    except (RedisConnectionError, RedisTimeoutError):
        # Fail open: while Redis is unreachable (a restart takes seconds) the
        # chat keeps accepting messages, which PostgreSQL stores durably; only
        # the flood protection lapses, and the outage is in the log.
        logger.warning("rate limit unavailable (Redis unreachable): admitting user %s", user_id, exc_info=True)
        return RateDecision(allowed=True, retry_after_seconds=0)
    return RateDecision(allowed=bool(allowed), retry_after_seconds=max(0, int(retry_ms)) / 1000)
