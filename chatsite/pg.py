"""The process's async PostgreSQL pool, for the one hot path that skips the ORM.

Sending a message is the product's hot path: at hundreds of messages a second
the ORM (query building, a thread hop per call, one thread for every
thread-sensitive call of the process) is the bottleneck, measured in
docs/benchmark.md. chat/message_writer.py therefore stores socket sends with
one SQL statement per batch on this pool, from the event loop. Everything else
uses the ORM. On SQLite (the embedded default) there is no pool and the writer
uses the ORM service instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import weakref
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg import AsyncConnection, OperationalError
from psycopg_pool import AsyncConnectionPool

# Connections are opened on demand; a send waits at most this long for one.
POOL_TIMEOUT_SECONDS = 10

# psycopg connections belong to the loop that opened them; tests and
# async_to_sync calls run short-lived loops, so keep one pool per loop.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool[Any]] = weakref.WeakKeyDictionary()
_opening: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def available() -> bool:
    """Whether the default database is PostgreSQL (the pool exists only there)."""
    return bool(settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql")


def _closed_by_server(connection: AsyncConnection[Any]) -> bool:
    """Whether the server has closed this idle connection (a PostgreSQL
    restart, pg_terminate_backend), seen without a round trip: an idle
    connection has nothing to read unless the server sent its goodbye (a FATAL
    notice) and hung up. psycopg_pool's own check runs a query, which costs
    about as much CPU as a whole batch of the writer."""
    if connection.closed or connection.broken:
        return True
    # poll, not select: select refuses descriptors past 1024, which a server
    # with a thousand sockets open hands out.
    poller = select.poll()
    poller.register(connection.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


async def close() -> None:
    """Close this loop's pool (tests and scripts run loops of their own)."""
    existing = _pools.pop(asyncio.get_running_loop(), None)
    if existing is not None:
        await existing.close()


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[AsyncConnection[Any]]:
    """A live connection of this loop's pool. Precondition: available()."""
    the_pool = await pool()
    # One more try than the pool has connections: after a restart every
    # pooled connection may be dead, and the last try gets a new one.
    for _ in range(the_pool.max_size + 1):
        async with the_pool.connection() as live:
            if _closed_by_server(live):
                await live.close()  # the pool discards a closed connection
                continue
            yield live
            return
    raise OperationalError("no live connection to PostgreSQL")


def _connect_kwargs() -> dict[str, Any]:
    # Django's own connection parameters (host, name, user, password, options),
    # minus what only its sync connections understand.
    settings_dict = connections["default"].settings_dict
    params: dict[str, Any] = connections["default"].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    # UTC, as Django's connections: datetimes come back aware and in UTC. Added
    # to the options of DATABASE_URL (a search_path, say), not in their place.
    options = [params.get("options", ""), "-c TimeZone=UTC"]
    role = settings_dict["OPTIONS"].get("assume_role")
    if role:
        # Django runs SET ROLE on its own connections.
        options.append(f"-c role={role}")
    # Autocommit: every statement of the writer is a transaction of its own.
    return {**params, "autocommit": True, "options": " ".join(o for o in options if o)}


async def pool() -> AsyncConnectionPool[Any]:
    """This loop's pool, opened on first use. Precondition: available()."""
    loop = asyncio.get_running_loop()
    existing = _pools.get(loop)
    if existing is not None:
        return existing
    lock = _opening.setdefault(loop, asyncio.Lock())
    async with lock:
        existing = _pools.get(loop)
        if existing is not None:
            return existing
        new_pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            kwargs=_connect_kwargs(),
            # The writer stores one batch at a time: one connection, and a
            # spare for the moment a dead one is being replaced.
            min_size=1,
            max_size=2,
            timeout=POOL_TIMEOUT_SECONDS,
            open=False,
        )
        await new_pool.open()
        _pools[loop] = new_pool
        return new_pool
