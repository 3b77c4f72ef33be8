"""The process's Redis clients: the real server when REDIS_URL is set, otherwise
an in-process fakeredis server, so rate limits, typing and presence run the
same code (Lua scripts included) on the embedded default."""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

import fakeredis
import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

# Timeouts, so a Redis that hangs (rather than refuses) fails a command in
# seconds instead of holding the ORM thread (the rate limit) or a handler for
# good; one immediate retry, which is what a pooled connection that died with
# a Redis restart needs (redis-py's default, three retries with backoff, would
# stall a hung call for 20 s). The health check pings a connection idle for
# 30 s before reusing it.
_CLIENT_OPTIONS: dict[str, Any] = {"health_check_interval": 30, "socket_connect_timeout": 2, "socket_timeout": 2}
# Blocking pools: past this many commands in flight a caller waits (up to
# POOL_WAIT_SECONDS) for a free connection instead of failing at once with
# "Too many connections", which is what a burst of disconnects did to presence.
POOL_SIZE = 100
POOL_WAIT_SECONDS = 5


@functools.cache
def _fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@functools.cache
def sync_redis() -> redis.Redis:
    """A thread-safe client for sync code (services run in worker threads)."""
    if settings.REDIS_URL:
        pool = redis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT_SECONDS,
            retry=Retry(NoBackoff(), 1),
            **_CLIENT_OPTIONS,
        )
        return redis.Redis(connection_pool=pool)

    return fakeredis.FakeRedis(server=_fake_server())


# redis.asyncio connections belong to the loop that opened them; tests and
# async_to_sync calls run short-lived loops, so keep one client per loop.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        if settings.REDIS_URL:
            pool = aioredis.BlockingConnectionPool.from_url(
                settings.REDIS_URL,
                max_connections=POOL_SIZE,
                timeout=POOL_WAIT_SECONDS,
                retry=AsyncRetry(NoBackoff(), 1),
                **_CLIENT_OPTIONS,
            )
            client = aioredis.Redis(connection_pool=pool)
        else:
            import fakeredis

            client = fakeredis.FakeAsyncRedis(server=_fake_server())
        _async_clients[loop] = client
    return client


def key(*parts: object) -> str:
    """Every key the chat writes starts with one prefix, so tests and tenants can share a Redis."""
    return ":".join([settings.CHAT_REDIS_PREFIX, *map(str, parts)])
