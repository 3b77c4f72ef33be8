"""Where the server's time goes under load, sampled from outside with py-spy.

Two recordings of the same interval, on the generator's core:
- GIL (`--gil`): only samples of the thread holding the GIL. The server is one
  process on one core, so this is where its Python time goes: the top frames
  (self and inclusive) and a split by component. (py-spy's own "is this thread
  idle" guess counts uvloop's epoll wait as running, so it is not used.)
- wall (`--idle`): every sample of every thread, so a thread's occupancy
  (running, or blocked on PostgreSQL, as opposed to waiting for work) shows.
  One thread doing every thread-sensitive ORM call is a queue: its occupancy
  near 100 % makes it the bottleneck even when the core is not saturated.
Each thread's CPU time comes from /proc/PID/task/TID/stat over the interval.
Both recordings are py-spy's raw (collapsed stack) format, one line per
distinct stack with its sample count, for flamegraph.pl or speedscope.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.servers import GENERATOR_CPU, pinned

_LINE_NO = re.compile(r":\d+\)")
_THREAD = re.compile(r"^thread \((\d+)\): (.*)$")

# The innermost Python frame of a thread that waits for work: an executor
# worker blocked on its queue, the event loop inside uvloop's epoll. (A worker
# in Condition.wait is busy: that is async_to_sync waiting for the event loop
# to finish a broadcast.) Occupancy is reported for these two kinds only.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py)", "Runner.run (asyncio/runners.py)")
_OCCUPANCY_THREADS = ("MainThread", "ThreadPoolExecutor", "asyncio_")

# Buckets for a one-line summary of the CPU, by where a frame's code lives.
_BUCKETS = (
    ("psycopg (PostgreSQL driver)", ("psycopg",)),
    ("Django ORM / db", ("django/db",)),
    ("Django other", ("django/",)),
    ("asgiref sync/async hops", ("asgiref",)),
    ("channels / channels_redis / redis", ("channels", "redis/")),
    ("socket.io / engine.io", ("socketio/", "engineio/")),
    ("uvicorn / websockets", ("uvicorn/", "websockets/")),
    ("JSON", ("json/",)),
    ("simplejwt / PyJWT", ("rest_framework_simplejwt", "jwt/")),
    ("chat / presence (ours)", ("chat/", "presence/")),
)


# Frames every sample of a thread goes through (thread start, executor,
# asgiref's hop, uvicorn's main): left out of the top lists, kept in the files.
_PLUMBING = (
    "(threading.py)",
    "(concurrent/futures/thread.py)",
    "thread_handler (asgiref/sync.py)",
    "SyncToAsync.__call__.<locals>.func",
    "(channels/db.py)",
    "<frozen runpy>",
    "(click/core.py)",
    "(uvicorn/main.py)",
    "(uvicorn/__main__.py)",
    "(uvicorn/server.py)",
    "Runner.run (asyncio/runners.py)",
    "run (asyncio/runners.py)",
    "(uvicorn/_compat.py)",
)


def _plumbing(frame: str) -> bool:
    return any(p in frame for p in _PLUMBING)


def _worker_activity(frames: list[str]) -> str:
    """What a sync worker thread is doing in one wall-clock sample."""
    if any("AsyncToSync" in f for f in frames):
        return "waiting for the event loop (async_to_sync: the broadcast after commit)"
    if any("(redis/" in f for f in frames):
        return "Redis round trip from the worker (sync client: rate limit)"
    if frames and "(psycopg/" in frames[-1] and "wait" in frames[-1]:
        return "blocked on PostgreSQL (psycopg waiting for the server)"
    return "running Python (ORM, services, psycopg encoding)"


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(
    pid: int, out_dir: Path, duration: float, *, name: str, rate: int = 100
) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install -r requirements-dev.txt")
    recordings = []
    for mode, extra in (("gil", ["--gil"]), ("wall", ["--idle"])):
        path = out_dir / f"profile-{name}-{mode}.txt"
        command = [
            *pinned(GENERATOR_CPU),
            binary,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--duration",
            str(max(1, round(duration))),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",  # do not pause the server to read its stacks
            *extra,
            "-o",
            str(path),
        ]
        log = (out_dir / f"py-spy-{name}-{mode}.log").open("ab")
        recordings.append((mode, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), path))
    return recordings


def wait(recordings: list[tuple[str, subprocess.Popen[bytes], Path]], timeout: float) -> None:
    for _mode, process, _path in recordings:
        process.wait(timeout=timeout)


def _read(path: Path) -> list[tuple[int, str, list[str], int]]:
    """(native thread id, thread name, frames root first, samples) per line of a raw recording."""
    stacks = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = _LINE_NO.sub(")", body).split(";")
        match = _THREAD.match(frames[0])
        tid, name = (int(match[1]), match[2]) if match else (0, frames[0])
        stacks.append((tid, name, frames[1:], int(count)))
    return stacks


def _bucket(frame: str) -> str | None:
    for label, needles in _BUCKETS:
        if any(n in frame for n in needles):
            return label
    return None


def analyse(
    gil_path: Path, wall_path: Path, *, cpu_by_thread: dict[int, float], seconds: float, top: int = 20
) -> dict[str, Any]:
    """Top frames and components from the GIL recording; per thread, its CPU
    (from /proc) and its occupancy (from the wall recording)."""
    gil = _read(gil_path) if gil_path.exists() else []
    wall = _read(wall_path) if wall_path.exists() else []
    total = sum(n for *_rest, n in gil) or 1

    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    gil_by_thread: Counter[int] = Counter()
    buckets: Counter[str] = Counter()
    for tid, _name, frames, n in gil:
        gil_by_thread[tid] += n
        if frames:
            self_time[frames[-1]] += n
        for frame in set(frames):
            if not _plumbing(frame):
                inclusive[frame] += n
        # The innermost frame that falls in a bucket decides the sample's bucket.
        for frame in reversed(frames):
            label = _bucket(frame)
            if label is not None:
                buckets[label] += n
                break
        else:
            buckets["other (asyncio, stdlib)"] += n

    names: dict[int, str] = {}
    wall_samples: Counter[int] = Counter()
    idle_samples: Counter[int] = Counter()
    # Where the sync worker threads spend wall time (CPU and waits alike),
    # as a share of their samples: what a message costs the one thread that
    # runs thread-sensitive ORM calls.
    worker_wall: Counter[str] = Counter()
    worker_activity: Counter[str] = Counter()
    worker_samples = 0
    for tid, name, frames, n in wall:
        names[tid] = name
        wall_samples[tid] += n
        if not frames or frames[-1] in _IDLE_LEAVES:
            idle_samples[tid] += n
        if name.startswith("ThreadPoolExecutor"):
            worker_samples += n
            if frames and frames[-1] not in _IDLE_LEAVES:
                worker_activity[_worker_activity(frames)] += n
                for frame in set(frames):
                    if not _plumbing(frame):
                        worker_wall[frame] += n
            else:
                worker_activity["idle (waiting for work)"] += n
    for tid, name, _frames, _n in gil:
        names.setdefault(tid, name)

    threads = []
    for tid in sorted(set(cpu_by_thread) | set(names), key=lambda t: -cpu_by_thread.get(t, 0)):
        wall_n = wall_samples[tid]
        cpu = cpu_by_thread.get(tid)
        threads.append(
            {
                "tid": tid,
                "thread": names.get(tid, "(no Python frames)"),
                "cpu_pct": None if cpu is None else 100 * cpu / seconds,
                "gil_share_pct": 100 * gil_by_thread[tid] / total,
                "occupied_pct": 100 * (wall_n - idle_samples[tid]) / wall_n
                if wall_n and names.get(tid, "").startswith(_OCCUPANCY_THREADS)
                else None,
            }
        )

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "pct": 100 * n / total, "samples": n} for f, n in counter.most_common(top)]

    return {
        "samples": total,
        "seconds": seconds,
        "self": rows(self_time),
        "inclusive": rows(inclusive),
        "threads": threads,
        "buckets": [{"bucket": b, "pct": 100 * n / total} for b, n in buckets.most_common()],
        "worker_activity": [{"activity": a, "pct": 100 * n / worker_samples} for a, n in worker_activity.most_common()]
        if worker_samples
        else [],
        "worker_wall": [
            {"frame": f, "pct": 100 * n / worker_samples, "samples": n} for f, n in worker_wall.most_common(top + 10)
        ]
        if worker_samples
        else [],
        "files": {"gil": str(gil_path), "wall": str(wall_path)},
    }
