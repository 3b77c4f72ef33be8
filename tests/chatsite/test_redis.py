"""The process's Redis clients under a burst: callers wait for a connection
rather than fail (presence cleanup after many disconnects hit this)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from chatsite import redis as chat_redis


@pytest.mark.redis
async def test_a_burst_beyond_the_pool_size_waits_instead_of_failing():
    client = chat_redis.async_redis()
    burst = chat_redis.POOL_SIZE * 3
    # BLPOP with a short timeout holds each connection for a moment, so the
    # burst really needs more connections than the pool has.
    key = chat_redis.key("test", "burst")
    results = await asyncio.gather(*(client.blpop([key], timeout=0.05) for _ in range(burst)), return_exceptions=True)
    assert [r for r in results if isinstance(r, Exception)] == []


@pytest.mark.redis
def test_the_sync_client_uses_a_blocking_pool():
    # (redis-py's default pool also holds 100 connections, but refuses the 101st)
    pool = chat_redis.sync_redis().connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == chat_redis.POOL_SIZE
    assert chat_redis.sync_redis().ping()
