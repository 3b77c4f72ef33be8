"""The phases that are not the message workload: memory per idle connection,
connects per second, and the cost of presence per connect and disconnect."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from bench import wsclient
from bench.load import loadavg, own_cpu_seconds, percentile
from bench.servers import Server


async def connect_many(
    port: int, tokens: list[str], *, concurrency: int, on_packet: Any = None
) -> tuple[list[wsclient.SioClient], list[int], int, float]:
    """Connect one socket per token (at most `concurrency` handshakes in flight).
    Returns the sockets, each handshake's duration (ns), the failures, the wall time."""
    gate = asyncio.Semaphore(concurrency)
    durations: list[int] = []
    failures = 0
    callback = on_packet or (lambda _c, _t: None)

    async def one(index: int, token: str) -> wsclient.SioClient | None:
        nonlocal failures
        async with gate:
            t0 = time.monotonic_ns()
            try:
                client = await wsclient.connect(port, index=index, auth={"token": token}, on_packet=callback)
            except (wsclient.ConnectError, OSError, TimeoutError):
                failures += 1
                return None
            durations.append(time.monotonic_ns() - t0)
            return client

    start = time.monotonic()
    clients = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    wall = time.monotonic() - start
    return [c for c in clients if c is not None], durations, failures, wall


def close_all(clients: list[wsclient.SioClient]) -> None:
    for client in clients:
        client.close()


async def idle_memory(server: Server, tokens: list[str], *, concurrency: int, settle: float = 2.0) -> dict[str, Any]:
    """Server RSS growth per connected, authenticated, idle socket."""
    # Warm up first, so lazy imports and first-use caches are not billed to the sockets.
    warm, _, _, _ = await connect_many(server.port, tokens[:10], concurrency=10)
    close_all(warm)
    await asyncio.sleep(settle / 2)
    before = server.rss_kb()
    clients, _, failures, _ = await connect_many(server.port, tokens, concurrency=concurrency)
    await asyncio.sleep(settle)
    after = server.rss_kb()
    close_all(clients)
    await asyncio.sleep(settle / 2)
    n = len(clients)
    return {
        "server": server.kind,
        "clients": n,
        "failures": failures,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_connection": (after - before) / n if n else None,
    }


async def connect_rate(server: Server, tokens: list[str], *, concurrency: int, settle: float = 2.0) -> dict[str, Any]:
    """Connects per second: TCP, WebSocket upgrade, Engine.IO open, /chat connect
    with the JWT, until the namespace's connect answer (auth done)."""
    warm, _, _, _ = await connect_many(server.port, tokens[:10], concurrency=10)
    close_all(warm)
    await asyncio.sleep(settle / 2)
    cpu0, own0 = server.cpu_seconds(), own_cpu_seconds()
    clients, durations, failures, wall = await connect_many(server.port, tokens, concurrency=concurrency)
    cpu, own = server.cpu_seconds() - cpu0, own_cpu_seconds() - own0
    rss = server.rss_kb()
    close_all(clients)
    await asyncio.sleep(settle / 2)
    ordered = sorted(durations)
    return {
        "server": server.kind,
        "clients": len(tokens),
        "connected": len(clients),
        "failures": failures,
        "concurrency": concurrency,
        "wall_s": wall,
        "connects_per_s": len(clients) / wall if wall else None,
        "handshake_ms": {
            "p50": (percentile(ordered, 50) or 0) / 1e6,
            "p99": (percentile(ordered, 99) or 0) / 1e6,
            "max": ordered[-1] / 1e6 if ordered else None,
        },
        "server_cpu_pct": 100 * cpu / wall if wall else None,
        "generator_cpu_pct": 100 * own / wall if wall else None,
        "loadavg": loadavg(),
        "rss_with_all_connected_kb": rss,
    }


# --- presence -------------------------------------------------------------------------


def _command_calls(redis_client: Any) -> Counter[str]:
    stats = redis_client.info("commandstats")
    calls: Counter[str] = Counter()
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_")
        if command in ("info",):  # the measurement's own command
            continue
        calls[command] = int(values["calls"])
    return calls


class EventCounter:
    def __init__(self) -> None:
        self.events: Counter[str] = Counter()

    def __call__(self, _client: wsclient.SioClient, text: str) -> None:
        if text.startswith('42/chat,["'):
            self.events[text[10 : text.index('"', 10)]] += 1


async def presence(
    server: Server, redis_url: str, plans: dict[str, Any], *, grace: float, window: float = 1.0
) -> list[dict[str, Any]]:
    """For a user in k rooms, each with one other member online: the presence
    events the others receive and the Redis commands the server issues when the
    user connects, and when the user disconnects (after the grace period).

    Redis counts come from INFO commandstats deltas on the bench's private
    Redis; the background rate (heartbeats, health checks) is measured over
    an equal idle window and reported beside them, not hidden.
    """
    import redis

    client = redis.Redis.from_url(redis_url)
    rows = []
    for k_text, plan in sorted(plans.items(), key=lambda kv: int(kv[0])):
        k = int(k_text)
        counter = EventCounter()
        watchers, _, failures, _ = await connect_many(server.port, plan["watchers"], concurrency=50, on_packet=counter)
        await asyncio.sleep(window)

        s0 = _command_calls(client)
        await asyncio.sleep(window)
        s1 = _command_calls(client)
        idle = s1 - s0

        counter.events.clear()
        subject_events = EventCounter()
        t0 = time.monotonic()
        subject = await wsclient.connect(server.port, auth={"token": plan["subject"]}, on_packet=subject_events)
        connect_ms = (time.monotonic() - t0) * 1000
        await asyncio.sleep(window)
        s2 = _command_calls(client)
        on_connect = s2 - s1
        online_events = dict(counter.events)

        counter.events.clear()
        subject.close()
        await asyncio.sleep(grace + window)
        s3 = _command_calls(client)
        on_disconnect = s3 - s2
        offline_events = dict(counter.events)

        close_all(watchers)
        await asyncio.sleep(0.5)
        rows.append(
            {
                "rooms": k,
                "watchers": len(watchers),
                "watcher_failures": failures,
                "connect_ms": connect_ms,
                "events_to_others_on_connect": online_events,
                "events_to_subject_on_connect": dict(subject_events.events),
                "events_to_others_on_disconnect": offline_events,
                "redis_commands_on_connect": sum(on_connect.values()),
                "redis_commands_on_disconnect": sum(on_disconnect.values()),
                "redis_commands_idle_per_window": sum(idle.values()),
                "window_s": window,
                "grace_s": grace,
                "redis_by_command_on_connect": dict(on_connect.most_common()),
                "redis_by_command_on_disconnect": dict(on_disconnect.most_common()),
            }
        )
    client.close()
    return rows
