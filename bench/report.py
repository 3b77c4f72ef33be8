"""The machine description and the tables the bench prints."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load import StepResult, loadavg
from bench.servers import ROOT

PACKAGES = (
    "Django",
    "channels",
    "channels_redis",
    "python-socketio",
    "python-engineio",
    "uvicorn",
    "websockets",
    "uvloop",
    "httptools",
    "psycopg",
    "redis",
    "djangorestframework-simplejwt",
    "py-spy",
)


def tree() -> dict[str, Any]:
    """The code measured: the commit, and the files changed on top of it
    (others may be editing the tree while the bench runs)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "changed_files": [line[3:] for line in git("status", "--porcelain").splitlines()],
    }


def machine(infra: Any) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    meminfo = {
        line.split(":")[0]: line.split(":")[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
    }
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_total": meminfo.get("MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "loadavg_start": loadavg(),
        "server_core": 0,
        "generator_core": 1,
        "tree": tree(),
    }
    try:
        import psycopg

        with psycopg.connect(infra.database_url) as conn:
            row = conn.execute("select version()").fetchone()
            info["postgresql"] = row[0] if row else None
    except Exception as exc:  # the description must not fail the run
        info["postgresql"] = f"unknown ({exc})"
    try:
        import redis

        client = redis.Redis.from_url(infra.redis_url)
        info["redis"] = client.info("server").get("redis_version")
        info["redis_private"] = infra.private_redis
        client.close()
    except Exception as exc:
        info["redis"] = f"unknown ({exc})"
    return info


def memory(total: str | None) -> str:
    """MemTotal of /proc/meminfo ("24684092 kB") in GiB."""
    try:
        return f"{int(str(total).split()[0]) / 1048576:.1f} GiB"
    except (ValueError, IndexError):
        return str(total)


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pair(d: dict[str, Any], digits: int = 1) -> str:
    return f"{fmt(d.get('p50'), digits)} / {fmt(d.get('p99'), digits)}"


def step_line(r: StepResult | dict[str, Any]) -> str:
    d = r.as_dict() if isinstance(r, StepResult) else r
    flags = []
    if not d["drained"]:
        flags.append("backlog")
    if d["generator_cpu_pct"] > 85:
        flags.append("GENERATOR-BOUND?")
    errors = sum(d["errors"].values()) + d["unanswered"]
    return (
        f"{d['server']:<5} {fmt(d['rate']):>7} {fmt(d['accepted_per_s']):>10} {fmt(d['delivered_per_s']):>11} "
        f"{_pair(d['ack_ms']):>15} {_pair(d['delivery_ms']):>17} {fmt(d['lost']):>7} {fmt(errors):>6} "
        f"{fmt(d['server_cpu_pct']):>5}% ({fmt(d.get('server_main_thread_cpu_pct')):>3}/"
        f"{fmt(d.get('server_busiest_other_thread_cpu_pct')):>3}) "
        f"{fmt(d['generator_cpu_pct']):>4}% {fmt(d['send_lag_ms'].get('p99'), 1):>6} "
        f"{'pass' if d['passed'] else 'FAIL':>4} {' '.join(flags)}"
    )


STEP_HEADER = (
    f"{'srv':<5} {'offered':>7} {'accepted/s':>10} {'delivered/s':>11} {'ack p50/p99':>15} "
    f"{'delivery p50/p99':>17} {'lost':>7} {'errors':>6} {'srvCPU loop/thr':>16} {'gen':>5} "
    f"{'lag99':>6} {'':>4}"
)


def profile_text(p: dict[str, Any], top: int = 15) -> str:
    lines = [
        f"py-spy over {fmt(p['seconds'], 1)} s at {fmt(p.get('rate'))} msg/s offered, {p['samples']} samples "
        f"holding the GIL (files: {p['files']['gil']}, {p['files']['wall']})",
        "",
        "Threads (CPU: /proc, % of one core; GIL: share of GIL samples; occupied: not waiting for work):",
    ]
    for t in p["threads"]:
        if not t["cpu_pct"] and not t["gil_share_pct"]:
            continue
        lines.append(
            f"  {t['thread']:<28} CPU {fmt(t['cpu_pct'], 0):>3}%  GIL {fmt(t['gil_share_pct'], 1):>5}%  "
            f"occupied {fmt(t['occupied_pct'], 0):>3}%"
        )
    lines += ["", "Python time by component (innermost matching frame of each GIL sample):"]
    lines += [f"  {b['pct']:5.1f}%  {b['bucket']}" for b in p["buckets"]]
    lines += ["", f"Top {top} frames by self time:"]
    lines += [f"  {row['pct']:5.1f}%  {row['frame']}" for row in p["self"][:top]]
    lines += ["", f"Top {top + 10} frames by inclusive time:"]
    lines += [f"  {row['pct']:5.1f}%  {row['frame']}" for row in p["inclusive"][: top + 10]]
    if p.get("worker_activity"):
        lines += ["", "Sync worker thread(s) over wall-clock time:"]
        lines += [f"  {row['pct']:5.1f}%  {row['activity']}" for row in p["worker_activity"]]
    if p.get("worker_wall"):
        lines += ["", "Sync worker thread(s), wall time (running or blocked), % of their samples, inclusive:"]
        lines += [f"  {row['pct']:5.1f}%  {row['frame']}" for row in p["worker_wall"][: top + 10]]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    cfg = results["config"]
    m = results["machine"]
    servers = results["servers"]
    out = [
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {memory(m['memory_total'])}, Python {m['python']}, "
        f"load average {m['loadavg_start']} at start, {results.get('loadavg_end')} at end",
        f"Server on core {m['server_core']} (one uvicorn process, per-message deflate off), "
        f"generator on core {m['generator_core']}; PostgreSQL and Redis unpinned.",
        f"Workload: {cfg['rooms']} rooms x {cfg['clients_per_room']} WebSocket clients, every client sends; "
        f"{fmt(cfg['duration'], 1)} s per step. Latencies in ms. Server CPU: % of a core, "
        "(its event-loop thread / its busiest other thread); gen: generator CPU; "
        "lag99: generator send lag p99 (ms).",
        "",
        "Steps",
        STEP_HEADER,
    ]
    for kind, s in servers.items():
        shown = []
        for d in [s.get("fixed"), *(s.get("sweep") or {}).get("steps", [])]:
            if d and d not in shown:  # the fixed step may open the sweep
                shown.append(d)
                out.append(step_line(d))
        del kind

    if any("sweep" in s for s in servers.values()):
        out += ["", "Highest offered rate with p99 delivery < 100 ms, nothing lost, no error:"]
        best = {}
        for kind, s in servers.items():
            sweep = s.get("sweep")
            if not sweep:
                continue
            best[kind] = sweep["best_rate"]
            deliveries = None if sweep["best_rate"] is None else sweep["best_rate"] * cfg["clients_per_room"]
            out.append(
                f"  {kind:<5} {fmt(sweep['best_rate']):>7} msg/s  ({fmt(deliveries)} deliveries/s; "
                f"first failing rate {fmt(sweep['first_failing_rate'])})"
            )
        if best.get("ours") and best.get("bare"):
            ratio = best["ours"] / best["bare"]
            results["ratio_ours_to_bare"] = ratio
            out.append(f"  ratio ours/bare: {ratio:.2f}  (issue 3 asks for at least 0.50)")
        if cfg.get("quick"):
            out.append("  (--quick stops the sweep after two steps: these rates check the bench, they measure nothing)")

    ours = servers.get("ours") or {}
    candidates = [ours.get("fixed"), *(ours.get("sweep") or {}).get("steps", [])]
    best_rate = (ours.get("sweep") or {}).get("best_rate")
    chosen = next((d for d in candidates if d and d["rate"] == best_rate), None) or ours.get("fixed")
    if chosen and chosen.get("backend_per_message"):
        b = chosen["backend_per_message"]
        pg = ", ".join(f"{k.removeprefix('pg_')} {v:.2f}" for k, v in b.items() if k.startswith("pg_"))
        rd = ", ".join(f"{k.removeprefix('redis_')} {v:.2f}" for k, v in b.items() if k.startswith("redis_"))
        out += [
            "",
            f"Backend work per accepted message (ours, step at {fmt(chosen['rate'])} msg/s):",
            f"  PostgreSQL: {pg or '-'}",
            f"  Redis commands: {rd or '-'}",
        ]

    rows = [(k, s["idle_memory"]) for k, s in servers.items() if s.get("idle_memory")]
    if rows:
        out += ["", "Memory per idle connection (server VmRSS delta / sockets; target <= 50 KB)"]
        for kind, d in rows:
            out.append(
                f"  {kind:<5} {fmt(d['kb_per_connection'], 1):>6} KB  ({d['clients']} sockets, "
                f"RSS {fmt(d['rss_before_kb'])} -> {fmt(d['rss_after_kb'])} KB, {d['failures']} failed)"
            )
    rows = [(k, s["connect"]) for k, s in servers.items() if s.get("connect")]
    if rows:
        out += ["", "Connects (TCP + WebSocket + Engine.IO open + /chat connect with JWT, until accepted)"]
        for kind, d in rows:
            out.append(
                f"  {kind:<5} {fmt(d['connects_per_s']):>6} /s  ({d['connected']}/{d['clients']} in "
                f"{fmt(d['wall_s'], 2)} s, {d['concurrency']} in flight; handshake p50/p99 "
                f"{_pair(d['handshake_ms'], 0)} ms; CPU server {fmt(d['server_cpu_pct'])}%, "
                f"generator {fmt(d.get('generator_cpu_pct'))}%)"
            )
    if results.get("presence"):
        out += [
            "",
            "Presence: a user in k rooms (one other member online in each) connects, then disconnects",
            f"  {'k':>3} {'events to others':>18} {'redis cmds':>11} {'events to others':>18} {'redis cmds':>11} "
            f"{'idle cmds/window':>17}",
            f"  {'':>3} {'on connect':>18} {'on connect':>11} {'on disconnect':>18} {'on disconnect':>11}",
        ]
        for row in results["presence"]:
            on = sum(row["events_to_others_on_connect"].get(e, 0) for e in ("presence:online", "presence:status"))
            off = row["events_to_others_on_disconnect"].get("presence:offline", 0)
            out.append(
                f"  {row['rooms']:>3} {on:>18} {row['redis_commands_on_connect']:>11} {off:>18} "
                f"{row['redis_commands_on_disconnect']:>11} {row['redis_commands_idle_per_window']:>17}"
            )
        out.append("  (events counted: presence:online/status, presence:offline; Redis: INFO commandstats deltas)")
    for kind, s in servers.items():
        if s.get("profile"):
            out += ["", f"Profile of {kind} under load", profile_text(s["profile"], top=12 if kind == "ours" else 8)]
    return "\n".join(out)


def markdown(results: dict[str, Any]) -> str:
    """The results section of docs/benchmark.md, from a run's JSON."""
    m = results["machine"]
    cfg = results["config"]
    servers = results["servers"]
    lines = [
        f"Run of {results['started'][:16].replace('T', ' ')} UTC. Machine: {m['nproc']} vCPUs ({m['cpu_model']}), "
        f"{memory(m['memory_total'])} RAM, Linux {m['kernel']}, Python {m['python']}, "
        f"{(m.get('postgresql') or '').split(' on ')[0]}, Redis {m.get('redis')}; "
        f"python-socketio {m['packages'].get('python-socketio')}, uvicorn {m['packages'].get('uvicorn')}, "
        f"Django {m['packages'].get('Django')}. Server on core 0, generator on core 1; load average "
        f"{m['loadavg_start']} at start, {results.get('loadavg_end')} at end. "
        f"Tree: {m['tree']['commit'][:10]} plus {len(m['tree']['changed_files'])} changed files.",
        "",
        f"Workload: {cfg['rooms']} rooms x {cfg['clients_per_room']} WebSocket clients, every client sends, "
        f"{fmt(float(cfg['duration']), 1)} s per step, per-message deflate off.",
        "",
        "| server | offered msg/s | accepted/s | delivered/s | ack p50 / p99 ms | delivery p50 / p99 ms "
        "| lost | errors | server CPU (loop / busiest other thread) | generator CPU | pass |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, s in servers.items():
        shown: list[dict[str, Any]] = []
        for d in [s.get("fixed"), *(s.get("sweep") or {}).get("steps", [])]:
            if not d or d in shown:
                continue
            shown.append(d)
            errors = sum(d["errors"].values()) + d["unanswered"]
            lines.append(
                f"| {kind} | {fmt(d['rate'])} | {fmt(d['accepted_per_s'])} | {fmt(d['delivered_per_s'])} "
                f"| {_pair(d['ack_ms'])} | {_pair(d['delivery_ms'])} | {fmt(d['lost'])} | {fmt(errors)} "
                f"| {fmt(d['server_cpu_pct'])} % ({fmt(d.get('server_main_thread_cpu_pct'))} / "
                f"{fmt(d.get('server_busiest_other_thread_cpu_pct'))}) | {fmt(d['generator_cpu_pct'])} % "
                f"| {'pass' if d['passed'] else 'fail'}{'' if d['drained'] else ' (backlog)'} |"
            )
    lines += ["", "| | ours | bare | ours / bare |", "| --- | ---: | ---: | ---: |"]

    def both(getter: Any, digits: int = 0, unit: str = "") -> str:
        values = []
        for kind in ("ours", "bare"):
            try:
                values.append(getter(servers[kind]))
            except (KeyError, TypeError):
                values.append(None)
        ratio = values[0] / values[1] if values[0] and values[1] else None
        return f"{fmt(values[0], digits)}{unit} | {fmt(values[1], digits)}{unit} | {fmt(ratio, 2)}"

    lines += [
        f"| highest rate, p99 delivery < 100 ms, nothing lost (msg/s) | {both(lambda s: s['sweep']['best_rate'])} |",
        f"| first failing rate (msg/s; - : not reached) | {both(lambda s: s['sweep']['first_failing_rate'])} |",
        f"| memory per idle connection (KB) | {both(lambda s: s['idle_memory']['kb_per_connection'], 1)} |",
        f"| connects per second ({cfg['connect_clients']} clients) "
        f"| {both(lambda s: s['connect']['connects_per_s'])} |",
        f"| connect handshake p99 (ms) | {both(lambda s: s['connect']['handshake_ms']['p99'])} |",
    ]
    if results.get("presence"):
        lines += [
            "",
            "Presence, a user in k rooms with one other member online in each:",
            "",
            "| k | events to others on connect | Redis commands on connect | events to others on disconnect "
            "| Redis commands on disconnect | Redis commands in an idle window |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in results["presence"]:
            on = sum(row["events_to_others_on_connect"].get(e, 0) for e in ("presence:online", "presence:status"))
            off = row["events_to_others_on_disconnect"].get("presence:offline", 0)
            lines.append(
                f"| {row['rooms']} | {on} | {row['redis_commands_on_connect']} | {off} "
                f"| {row['redis_commands_on_disconnect']} | {row['redis_commands_idle_per_window']} |"
            )
    return "\n".join(lines)
