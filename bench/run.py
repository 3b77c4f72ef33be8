"""The bench's phases, in order, for each server; see docs/benchmark.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import load, measure, profile, report
from bench.servers import GENERATOR_CPU, RESULTS, SERVER_CPU, Infra, Server

# A failing step whose generator sent this late (p99, ms) is repeated once.
NOISY_LAG_MS = 25.0

QUICK = {
    "rooms": 2,
    "clients_per_room": 5,
    "rate": 50,
    "duration": 1.5,
    "sweep_start": 50,
    "sweep_max_steps": 2,
    "idle_clients": 100,
    "connect_clients": 200,
    "presence_rooms": "1,3",
    "presence_window": 0.5,
    "settle": 1.0,
    "profile_duration": 2.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Load-test our chat server against a bare python-socketio server, on this machine: "
            f"servers on core {SERVER_CPU}, the load generator on core {GENERATOR_CPU}, 127.0.0.1 only. "
            "By hand only (make bench), never in CI."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    w = p.add_argument_group("workload")
    w.add_argument("--rooms", type=int, default=10, help="rooms R")
    w.add_argument("--clients-per-room", type=int, default=20, help="WebSocket clients C per room (all send)")
    w.add_argument("--rate", type=float, default=100, help="offered messages/s of the fixed-rate step")
    w.add_argument("--duration", type=float, default=10, help="seconds of sending per step")
    s = p.add_argument_group("sweep")
    s.add_argument(
        "--sweep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="find the highest rate with p99 delivery < 100 ms and nothing lost, for each server",
    )
    s.add_argument("--sweep-start", type=float, default=100, help="first rate of the sweep")
    s.add_argument("--sweep-factor", type=float, default=1.5, help="growth per passing step until one fails")
    s.add_argument("--sweep-max", type=float, default=10000, help="highest rate tried")
    s.add_argument("--sweep-precision", type=float, default=0.1, help="bisect until (fail-pass)/pass <= this")
    s.add_argument("--sweep-max-steps", type=int, default=14, help="steps per server at most")
    o = p.add_argument_group("other phases")
    o.add_argument("--only", choices=("ours", "bare"), help="measure one server only")
    o.add_argument("--idle-clients", type=int, default=1000, help="idle sockets for memory per connection (0: skip)")
    o.add_argument("--connect-clients", type=int, default=2000, help="sockets for connects per second (0: skip)")
    o.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight at once")
    o.add_argument(
        "--presence-rooms", default="1,5,20", help="k values: presence cost for a user in k rooms ('' skips)"
    )
    o.add_argument("--presence-window", type=float, default=1.0, help="seconds to wait for presence to settle")
    o.add_argument("--settle", type=float, default=2.0, help="seconds idle sockets settle before RSS is read")
    o.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=profile.py_spy() is not None,
        help="py-spy profile of each server under load (at its sweep's best rate, else --rate)",
    )
    o.add_argument("--profile-duration", type=float, default=10, help="seconds profiled")
    o.add_argument("--profile-rate", type=float, help="offered rate while profiling (default: see --profile)")
    o.add_argument("--quick", action="store_true", help="everything, small, in under a minute: checks the bench")
    e = p.add_argument_group("environment")
    e.add_argument("--database", default="chat_bench", help="PostgreSQL database, dropped and created anew")
    e.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server, no db name")
    e.add_argument("--redis-url", help="use this Redis (default: start a private redis-server on a free port)")
    e.add_argument("--markdown", metavar="JSON", help="only print the results of an earlier run as Markdown tables")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    return args


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.stamp = stamp
        self.run_dir = RESULTS / f"run-{stamp}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.infra = Infra(
            database=args.database, pg_admin_url=args.pg_url, redis_url=args.redis_url, log_dir=self.run_dir
        )
        self.results: dict[str, Any] = {"servers": {}}
        self.kinds = [args.only] if args.only else ["ours", "bare"]

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def log_step(self, r: load.StepResult) -> None:
        self.log(report.step_line(r))

    async def run(self) -> dict[str, Any]:
        args = self.args
        started = datetime.now(UTC)
        self.log(f"results in {self.run_dir}")
        self.infra.start()
        try:
            self.log(f"database {args.database}: migrating; Redis {self.infra.redis_url}")
            self.infra.migrate()
            ks = [int(k) for k in args.presence_rooms.split(",") if k.strip()]
            seeds = self.infra.seed(
                {
                    "rooms": args.rooms,
                    "per_room": args.clients_per_room,
                    "extra_users": max(args.idle_clients, args.connect_clients, 10),
                    "presence_rooms": ks,
                }
            )
            machine = report.machine(self.infra)
            self.results.update(
                {
                    "started": started.isoformat(),
                    "machine": machine,
                    "config": {k: v for k, v in vars(args).items()},
                }
            )
            for kind in self.kinds:
                self.results["servers"][kind] = await self.run_server(kind, seeds)
            if "ours" in self.kinds and ks:
                self.results["presence"] = await self.run_presence(seeds["presence"])
        finally:
            self.infra.stop()
        self.results["finished"] = datetime.now(UTC).isoformat()
        self.results["loadavg_end"] = load.loadavg()
        return self.results

    async def run_server(self, kind: str, seeds: dict[str, Any]) -> dict[str, Any]:
        args = self.args
        out: dict[str, Any] = {}
        assignments = [(token, room) for token, room in seeds["workload"]]
        holder: dict[str, Any] = {}

        async def fresh() -> None:
            if "workload" in holder:
                holder.pop("workload").close()
            if "server" in holder:
                holder.pop("server").stop()
            # Registered before the sockets connect, so a failure there still
            # stops the server (the `finally` below).
            server = holder["server"] = Server(kind, infra=self.infra, log_dir=self.run_dir).start()
            workload = load.Workload(server, assignments, probe=self.infra.probe if kind == "ours" else None)
            t0 = time.monotonic()
            await workload.connect()
            self.log(f"{kind}: pid {server.pid}, {len(assignments)} sockets joined in {time.monotonic() - t0:.1f} s")
            holder["workload"] = workload

        async def once(rate: float, duration: float | None) -> load.StepResult:
            r = await holder["workload"].step(rate=rate, duration=duration or args.duration)
            if not r.drained or not holder["server"].alive():
                self.log(f"{kind}: backlog or exit after {rate:g} msg/s; restarting the server")
                await fresh()
            return r

        async def step(rate: float, duration: float | None = None) -> load.StepResult:
            r = await once(rate, duration)
            lag = r.send_lag_ms.get("p99") or 0
            if not r.passed and lag > NOISY_LAG_MS:
                # The generator could not even send on time: its core was taken
                # by something else (a shared machine). Not the server's verdict.
                self.log(f"{kind}: generator send lag p99 {lag:.0f} ms: discarding the step, repeating it once")
                out.setdefault("discarded_noisy_steps", []).append(r.as_dict())
                r = await once(rate, duration)
            return r

        try:
            await fresh()
            fixed = await step(args.rate)
            self.log_step(fixed)
            out["fixed"] = fixed.as_dict()
            if args.sweep:
                out["sweep"] = await load.sweep(
                    step,
                    start=args.sweep_start,
                    factor=args.sweep_factor,
                    maximum=args.sweep_max,
                    precision=args.sweep_precision,
                    max_steps=args.sweep_max_steps,
                    log=self.log_step,
                    done=fixed,
                )
            if args.profile:
                rate = args.profile_rate or (out.get("sweep") or {}).get("best_rate") or args.rate
                out["profile"] = await self.run_profile(holder, rate)
        finally:
            if "workload" in holder:
                holder["workload"].close()
                await asyncio.sleep(0.5)
            if "server" in holder:
                holder["server"].stop()

        if args.idle_clients or args.connect_clients:
            server = Server(kind, infra=self.infra, log_dir=self.run_dir).start()
            try:
                if args.idle_clients:
                    out["idle_memory"] = await measure.idle_memory(
                        server,
                        seeds["extra"][: args.idle_clients],
                        concurrency=args.connect_concurrency,
                        settle=args.settle,
                    )
                    self.log(f"{kind}: idle memory {report.fmt(out['idle_memory']['kb_per_connection'])} KB/socket")
                if args.connect_clients:
                    out["connect"] = await measure.connect_rate(
                        server,
                        seeds["extra"][: args.connect_clients],
                        concurrency=args.connect_concurrency,
                        settle=args.settle,
                    )
                    self.log(f"{kind}: {report.fmt(out['connect']['connects_per_s'])} connects/s")
            finally:
                server.stop()
        return out

    async def run_profile(self, holder: dict[str, Any], rate: float) -> dict[str, Any]:
        args = self.args
        server: Server = holder["server"]
        # The recording starts a little after the load and ends before it stops.
        duration = args.profile_duration
        kind = server.kind
        self.log(f"{kind}: profiling {duration:g} s at {rate:g} msg/s with py-spy")
        task = asyncio.create_task(holder["workload"].step(rate=rate, duration=duration + 2))
        await asyncio.sleep(1)
        recordings = profile.start(server.pid, self.run_dir, duration, name=kind)
        cpu0, t0 = server.thread_cpu(), time.monotonic()
        await asyncio.sleep(duration)
        cpu1, seconds = server.thread_cpu(), time.monotonic() - t0
        r = await task
        await asyncio.to_thread(profile.wait, recordings, 60)
        analysis = profile.analyse(
            self.run_dir / f"profile-{kind}-gil.txt",
            self.run_dir / f"profile-{kind}-wall.txt",
            cpu_by_thread={tid: cpu1[tid] - cpu0.get(tid, 0.0) for tid in cpu1},
            seconds=seconds,
        )
        analysis["rate"] = rate
        analysis["step"] = r.as_dict()
        (self.run_dir / f"profile-{kind}-summary.txt").write_text(report.profile_text(analysis))
        return analysis

    async def run_presence(self, plans: dict[str, Any]) -> list[dict[str, Any]]:
        server = Server("ours", infra=self.infra, log_dir=self.run_dir).start()
        grace = float(self.infra.django_env()["PRESENCE_GRACE_SECONDS"])
        try:
            assert self.infra.redis_url
            rows = await measure.presence(
                server, self.infra.redis_url, plans, grace=grace, window=self.args.presence_window
            )
        finally:
            server.stop()
        self.log(f"presence measured for k in {[r['rooms'] for r in rows]}")
        return rows


def _pin_generator() -> None:
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    else:
        print("warning: fewer than 2 CPUs: server and generator share one", file=sys.stderr)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        print(report.markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    _pin_generator()
    bench = Bench(args)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(bench.run())
    path = RESULTS / f"bench-{bench.stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(report.render(results))
    print(f"\nJSON: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0
