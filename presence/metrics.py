"""What presence costs, counted in this process: Redis round trips, emits, SQL.

The bench (and tests) read these to show how the cost of a connect or a
disconnect grows. Every count is attributed to the phase it happened in:

- `connect`, `disconnect`, `status`: a socket's own hooks and events;
- `grace`: the timer that turns a disconnect into an offline after the grace;
- `heartbeat`, `sweep`: the background work of the process.

Counters are per process and never reset by themselves: take a `snapshot()`
before and after, or `reset()` between measurements. Over HTTP a staff user
reads a process's counters at `GET /api/presence/metrics/`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Iterator

# Kinds of cost.
REDIS_COMMANDS = "redis_commands"  # client round trips; one Lua script counts once
EMITS = "emits"  # emits to co-members: each is one PUBLISH on the Channels layer
AUDIENCES = "audiences"  # `user:<id>` audiences named by those emits (m per emit)
SQL_QUERIES = "sql_queries"  # queries presence ran (fixed per call, asserted in tests)
# Events by name: "events.online", "events.offline", "events.status", and
# "events.list" (a `presence:list` to a local socket: no PUBLISH).
EVENTS = "events"

_phase: contextvars.ContextVar[str] = contextvars.ContextVar("presence_phase", default="other")
_counts: Counter[str] = Counter()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Attribute the counts made inside (including tasks started inside) to `name`."""
    token = _phase.set(name)
    try:
        yield
    finally:
        _phase.reset(token)


def count(kind: str, n: int = 1) -> None:
    _counts[f"{_phase.get()}.{kind}"] += n


def snapshot() -> dict[str, int]:
    """`{"<phase>.<kind>": n}`, e.g. `{"connect.redis_commands": 2, "connect.emits": 1}`."""
    return dict(_counts)


def reset() -> None:
    _counts.clear()
