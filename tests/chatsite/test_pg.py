"""chatsite/pg.py: the writer's async pool hands out live connections only."""

from __future__ import annotations

import contextlib
import os
import resource

import psycopg
import pytest

from chatsite import pg

pytestmark = [
    pytest.mark.skipif(not pg.available(), reason="the async pool exists on PostgreSQL only"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
async def _close_the_pool():
    yield
    await pg.close()


@contextlib.contextmanager
def _descriptors_taken(count: int):
    """Hold `count` file descriptors, as a server with that many sockets does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 100:
        pytest.skip(f"needs {count + 100} file descriptors, the limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 100), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(count)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _backend_pid(connection) -> int:
    return int((await (await connection.execute("SELECT pg_backend_pid()")).fetchone())[0])


async def test_a_connection_the_server_closed_is_replaced_even_past_descriptor_1024():
    # given a process holding more than 1,024 descriptors, so the pool's
    # connection gets a number select() refuses
    with _descriptors_taken(1100):
        async with pg.connection() as first:
            pid = await _backend_pid(first)
            assert first.pgconn.socket >= 1024

        # when the server ends that session
        async with await psycopg.AsyncConnection.connect(**pg._connect_kwargs()) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            await admin.execute("SELECT pg_sleep(0.1)")

        # then the next connection handed out is a new, live one
        async with pg.connection() as second:
            assert await _backend_pid(second) != pid
