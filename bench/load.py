"""The workload: R rooms of C sockets, a fixed offered send rate for T seconds.

Open loop: sends go out on schedule whether or not earlier ones were answered,
so a slow server shows up as latency and backlog, not as a politely lower rate.
Every message carries its step, its number and its send time (monotonic ns,
one clock for the whole machine) in its text, so each delivery is matched to
its message without a lookup table on the server side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import wsclient
from bench.servers import Server

_MARK = re.compile(r"~B~(\d+)~(\d+)~(\d+)~")
_DELIVERY = '42/chat,["chat:message",'
_OK = '[{"status":"ok"'

TICK = 0.002  # the scheduler's granularity, seconds


def percentile(sorted_values: Any, q: float) -> float | None:
    if not len(sorted_values):
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[index])


def _ms(values: array[int]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {f"p{q}": (None if (v := percentile(ordered, q)) is None else v / 1e6) for q in (50, 99)} | {
        "max": ordered[-1] / 1e6 if ordered else None
    }


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class StepResult:
    server: str
    rate: float
    duration: float
    sent: int = 0
    accepted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    expected_deliveries: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    accepted_per_s: float = 0.0
    delivered_per_s: float = 0.0
    ack_ms: dict[str, float | None] = field(default_factory=dict)
    delivery_ms: dict[str, float | None] = field(default_factory=dict)
    send_lag_ms: dict[str, float | None] = field(default_factory=dict)
    server_cpu_pct: float = 0.0
    # The server's event loop thread, and its busiest other thread (for ours:
    # the one thread that runs every thread-sensitive ORM call), % of a core.
    server_main_thread_cpu_pct: float = 0.0
    server_busiest_other_thread_cpu_pct: float = 0.0
    generator_cpu_pct: float = 0.0
    loadavg: float = 0.0
    drained: bool = True
    passed: bool = False
    # Per accepted message: PostgreSQL sessions opened and transactions, Redis
    # commands by name (ours only: the bare server uses neither).
    backend_per_message: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Workload:
    """R*C connected, joined sockets on one server, and the steps run on them."""

    def __init__(
        self,
        server: Server,
        assignments: list[tuple[str, str]],
        probe: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.server = server
        self.probe = probe
        self.assignments = assignments
        self.clients: list[wsclient.SioClient] = []
        self.step_id = 0
        self._reset_counters(0)

    def _reset_counters(self, n: int) -> None:
        self.received = array("H", bytes(2 * n))
        self.acked = bytearray(n)
        self.delivery_ns = array("q")
        self.ack_ns = array("q")
        self.lag_ns = array("q")
        self.error_codes: Counter[str] = Counter()
        self.accepted = 0
        self.expected = 0
        self.delivered = 0
        self.last_ack_ns = 0
        self.last_delivery_ns = 0
        self.last_packet_ns = 0

    # --- connections ----------------------------------------------------------

    async def connect(self, concurrency: int = 50) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, token: str, room: str) -> wsclient.SioClient:
            async with gate:
                client = await wsclient.connect(
                    self.server.port, index=index, auth={"token": token}, on_packet=self._on_packet
                )
                answer = await client.call("room:join", room, timeout=30)
                if not isinstance(answer, dict) or answer.get("status") != "ok":
                    raise RuntimeError(f"room:join {room} refused: {answer!r}")
                client.room = room
                return client

        self.clients = list(
            await asyncio.gather(*(one(i, token, room) for i, (token, room) in enumerate(self.assignments)))
        )
        self.room_sizes = Counter(c.room for c in self.clients)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.clients = []

    # --- packets (run inside data_received: no awaits, little work) ------------

    def _on_packet(self, client: wsclient.SioClient, text: str) -> None:
        now = time.monotonic_ns()
        self.last_packet_ns = now
        if not text.startswith(_DELIVERY):
            return
        match = _MARK.search(text)
        if match is None or int(match[1]) != self.step_id:
            return
        n = int(match[2])
        self.received[n] += 1
        self.delivered += 1
        self.delivery_ns.append(now - int(match[3]))
        self.last_delivery_ns = now

    def _ack_callback(self, n: int, audience: int) -> Any:
        def on_ack(text: str, sent_ns: int) -> None:
            now = time.monotonic_ns()
            self.last_packet_ns = now
            if self.step_id != step:
                return
            self.ack_ns.append(now - sent_ns)
            if text.startswith(_OK):
                self.acked[n] = 1
                self.accepted += 1
                self.expected += audience
                self.last_ack_ns = now
            else:
                try:
                    code = json.loads(text)[0].get("code", "?")
                except (ValueError, AttributeError, IndexError):
                    code = "unparsable"
                self.error_codes[str(code)] += 1

        step = self.step_id
        return on_ack

    # --- one step ---------------------------------------------------------------

    async def step(
        self, *, rate: float, duration: float, drain_quiet: float = 2.0, drain_max: float = 30.0
    ) -> StepResult:
        """Offer `rate` messages/s for `duration` s, spread round-robin over every
        socket (so over every room), then wait for acks and deliveries to drain."""
        self.step_id += 1
        total = max(1, int(rate * duration))
        self._reset_counters(total)
        step = self.step_id
        senders = self.clients
        result = StepResult(server=self.server.kind, rate=rate, duration=duration, sent=total)
        sizes = [self.room_sizes[c.room] for c in senders]

        loop = asyncio.get_running_loop()
        backend0 = await asyncio.to_thread(self.probe) if self.probe else {}
        server_cpu0, own_cpu0, load0 = self.server.cpu_seconds(), own_cpu_seconds(), loadavg()
        threads0 = self.server.thread_cpu()
        start = loop.time()
        start_ns = time.monotonic_ns()
        i = 0
        interval_ns = 1e9 / rate
        while i < total:
            due = min(total, int((loop.time() - start) * rate) + 1)
            while i < due:
                client = senders[i % len(senders)]
                now_ns = time.monotonic_ns()
                self.lag_ns.append(max(0, now_ns - start_ns - int(i * interval_ns)))
                client.emit(
                    "chat:message",
                    {
                        "roomId": client.room,
                        "text": f"~B~{step}~{i}~{now_ns}~ hello from the bench, room {client.room}",
                        "clientId": f"b{step}-{i}",
                    },
                    self._ack_callback(i, sizes[i % len(senders)]),
                )
                i += 1
            await asyncio.sleep(TICK)
        sent_wall = loop.time() - start
        server_cpu1, own_cpu1 = self.server.cpu_seconds(), own_cpu_seconds()
        threads1 = self.server.thread_cpu()

        # Drain: until every ack and every delivery of an accepted message is in,
        # or nothing has arrived for `drain_quiet` s, or `drain_max` s passed.
        drain_start = loop.time()
        while True:
            outstanding = sum(len(c.pending) for c in senders)
            if outstanding == 0 and self.delivered >= self.expected:
                break
            quiet = (time.monotonic_ns() - self.last_packet_ns) / 1e9
            if quiet > drain_quiet or loop.time() - drain_start > drain_max:
                result.drained = False
                break
            await asyncio.sleep(0.05)

        # Stragglers of this step must not count in the next one.
        for client in senders:
            client.pending.clear()

        result.accepted = self.accepted
        result.errors = dict(self.error_codes)
        result.unanswered = total - self.accepted - sum(self.error_codes.values())
        result.expected_deliveries = self.expected
        lost = duplicates = 0
        for n in range(total):
            if self.acked[n]:
                got = self.received[n]
                want = sizes[n % len(senders)]
                lost += max(0, want - got)
                duplicates += max(0, got - want)
        result.lost, result.duplicates = lost, duplicates
        result.delivered = self.delivered
        if self.last_ack_ns:
            result.accepted_per_s = self.accepted / max(sent_wall, (self.last_ack_ns - start_ns) / 1e9)
        if self.last_delivery_ns:
            result.delivered_per_s = self.delivered / max(sent_wall, (self.last_delivery_ns - start_ns) / 1e9)
        result.ack_ms = _ms(self.ack_ns)
        result.delivery_ms = _ms(self.delivery_ns)
        result.send_lag_ms = _ms(self.lag_ns)
        result.server_cpu_pct = 100 * (server_cpu1 - server_cpu0) / sent_wall
        per_thread = {tid: 100 * (cpu - threads0.get(tid, 0.0)) / sent_wall for tid, cpu in threads1.items()}
        result.server_main_thread_cpu_pct = per_thread.pop(self.server.pid, 0.0)
        result.server_busiest_other_thread_cpu_pct = max(per_thread.values(), default=0.0)
        result.generator_cpu_pct = 100 * (own_cpu1 - own_cpu0) / sent_wall
        result.loadavg = max(load0, loadavg())
        p99 = result.delivery_ms.get("p99")
        result.passed = (
            result.drained
            and result.lost == 0
            and result.unanswered == 0
            and not result.errors
            and p99 is not None
            and p99 < 100
        )
        # Let the server's own leftovers settle before the next step (and
        # PostgreSQL flush its statistics, about once a second).
        await asyncio.sleep(1.0)
        if self.probe and self.accepted:
            with contextlib.suppress(Exception):
                backend1 = await asyncio.to_thread(self.probe)
                result.backend_per_message = {
                    key: (value - backend0.get(key, 0)) / self.accepted
                    for key, value in sorted(backend1.items())
                    if value - backend0.get(key, 0)
                }
        return result


async def sweep(
    run_step: Any,
    *,
    start: float,
    factor: float,
    maximum: float,
    precision: float,
    max_steps: int,
    log: Any,
    done: StepResult | None = None,
) -> dict[str, Any]:
    """The highest offered rate that passes (p99 delivery < 100 ms, nothing lost,
    no error, no backlog): grow by `factor` until a step fails, then bisect.
    `done` is a step already run at `start`, reused as the first."""
    steps: list[StepResult] = []
    best: float | None = None
    fail: float | None = None
    rate = start
    while len(steps) < max_steps:
        if done is not None and not steps and done.rate == rate:
            r = done
        else:
            r = await run_step(rate)
            log(r)
        steps.append(r)
        if r.passed:
            best = rate
            if fail is None:
                if rate >= maximum:
                    break
                rate = min(maximum, round(rate * factor))
                continue
        else:
            fail = rate
            if best is None:
                if rate <= 10:
                    break
                rate = max(10, round(rate / 2))
                continue
        assert fail is not None and best is not None
        if (fail - best) / best <= precision:
            break
        rate = round((best + fail) / 2)
        if rate in (best, fail):
            break
    return {"best_rate": best, "first_failing_rate": fail, "steps": [s.as_dict() for s in steps]}
