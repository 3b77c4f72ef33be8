"""What the bench measures, started by the bench: a dedicated PostgreSQL
database, a private Redis, and uvicorn processes pinned to the server core.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chatsite.serve import uvicorn_command

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable

SERVER_CPU = 0
GENERATOR_CPU = 1

APPS = {"ours": "chatsite.asgi:application", "bare": "bench.bare_server:app"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start-up; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s; see {log}")


def pinned(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


class Infra:
    """The bench's own database and Redis, and the environment our server runs with."""

    def __init__(self, *, database: str, pg_admin_url: str, redis_url: str | None, log_dir: Path) -> None:
        self.database = database
        self.pg_admin_url = pg_admin_url.rstrip("/")
        self.log_dir = log_dir
        self.redis_url = redis_url
        self.redis_process: subprocess.Popen[bytes] | None = None
        self.migrated = False
        self._template = ""
        self.private_redis = redis_url is None
        self.prefix = f"bench{os.getpid()}"
        # The server runs as in production: DEBUG off (DEBUG keeps every query
        # in memory), hence a real secret, shared with the seeder that signs JWTs.
        self.secret_key = secrets.token_urlsafe(48)

    @property
    def database_url(self) -> str:
        return f"{self.pg_admin_url}/{self.database}"

    def start(self) -> None:
        self._create_database()
        if self.private_redis:
            self._start_redis()

    def _create_database(self) -> None:
        """A fresh, migrated database. Migrating takes seconds, so the first run
        keeps a migrated template, named by a hash of every migration file, and
        later runs copy it (CREATE DATABASE ... TEMPLATE), which is instant."""
        import psycopg

        if not self.database.replace("_", "").isalnum():
            raise ValueError(f"database name {self.database!r}: letters, digits and _ only")
        digest = hashlib.sha256()
        for path in sorted(ROOT.glob("*/migrations/*.py")):
            digest.update(path.name.encode() + path.read_bytes())
        template = f"{self.database}_tpl_{digest.hexdigest()[:12]}"
        with psycopg.connect(f"{self.pg_admin_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            names = [row[0] for row in conn.execute("select datname from pg_database")]
            if template in names:
                conn.execute(f'CREATE DATABASE "{self.database}" TEMPLATE "{template}"')
                self.migrated = True
                return
            for stale in names:
                if stale.startswith(f"{self.database}_tpl_"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.migrated = False
        self._template = template

    def migrate(self) -> None:
        if self.migrated:
            return
        self._manage(["migrate", "--noinput", "-v", "0"], "migrate")
        import psycopg

        with psycopg.connect(f"{self.pg_admin_url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._template}" TEMPLATE "{self.database}"')

    def _start_redis(self) -> None:
        # A private Redis makes INFO commandstats exact (no other client counts)
        # and keeps the load off the Redis other people are using.
        binary = shutil.which("redis-server")
        if binary is None:
            self.redis_url = "redis://127.0.0.1:6379/0"
            self.private_redis = False
            return
        port = free_port()
        log = self.log_dir / "redis.log"
        command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        command += ["--protected-mode", "yes", "--daemonize", "no"]
        # Unpinned, like PostgreSQL: the OS places both on either core.
        self.redis_process = subprocess.Popen(
            ["taskset", "-c", "0-1", *command] if shutil.which("taskset") else command,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait_port(port, self.redis_process, 10, "redis-server", log)
        self.redis_url = f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.terminate()
            self.redis_process.wait(timeout=10)

    def probe(self) -> dict[str, float]:
        """Counters of the backends, for per-message costs: PostgreSQL sessions
        opened and transactions on the bench database, Redis commands by name."""
        import psycopg
        import redis

        out: dict[str, float] = {}
        with psycopg.connect(f"{self.pg_admin_url}/postgres", autocommit=True) as conn:
            row = conn.execute(
                "select sessions, xact_commit, xact_rollback from pg_stat_database where datname = %s",
                (self.database,),
            ).fetchone()
        if row:
            out["pg_sessions"], out["pg_commits"], out["pg_rollbacks"] = map(float, row)
        if self.private_redis and self.redis_url:
            client = redis.Redis.from_url(self.redis_url)
            for name, values in client.info("commandstats").items():
                if name != "cmdstat_info":
                    out["redis_" + name.removeprefix("cmdstat_")] = float(values["calls"])
            client.close()
        return out

    def django_env(self, *, prefix: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url or "",
            "CHAT_REDIS_PREFIX": prefix or self.prefix,
            # The workload sends far more than a person would; the limiter's
            # Redis round trip still runs on every send.
            "CHAT_RATE_LIMIT_MESSAGES": "100000000",
            "CHAT_RATE_LIMIT_WINDOW": "10",
            # Every simulated user connects from 127.0.0.1.
            "CHAT_MAX_SOCKETS_PER_ADDRESS": "1000000",
            # Short, so the presence measurement sees an offline without waiting 5 s.
            "PRESENCE_GRACE_SECONDS": "1",
            "DEBUG": "false",
            "HTTPS": "false",  # plain HTTP on 127.0.0.1
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "JWT_ACCESS_MINUTES": "600",
            "LOG_LEVEL": "WARNING",
        }

    def seed(self, plan: dict[str, Any]) -> dict[str, Any]:
        plan_path = self.log_dir / "seed-plan.json"
        out_path = self.log_dir / "seed-out.json"
        plan_path.write_text(json.dumps(plan))
        self._run([PYTHON, "-m", "bench.seed", str(plan_path), str(out_path)], "seed")
        result: dict[str, Any] = json.loads(out_path.read_text())
        return result

    def _manage(self, args: list[str], what: str) -> None:
        self._run([PYTHON, "manage.py", *args], what)

    def _run(self, command: list[str], what: str) -> None:
        log = self.log_dir / f"{what}.log"
        with log.open("ab") as out:
            done = subprocess.run(command, cwd=ROOT, env=self.django_env(), stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed ({done.returncode}); see {log}:\n{log.read_text()[-3000:]}")


class Server:
    """One uvicorn process on the server core, with the flags of `make run`."""

    def __init__(self, kind: str, *, infra: Infra, log_dir: Path, redis_prefix: str | None = None) -> None:
        self.kind = kind
        self.infra = infra
        self.port = free_port()
        # A prefix per server process: state a stopped server left in Redis
        # (presence of sockets still registered, typing) is not swept up and
        # counted by the next one.
        self.redis_prefix = redis_prefix or f"{infra.prefix}-{self.port}"
        self.log_path = log_dir / f"server-{kind}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        command = [
            *pinned(SERVER_CPU),
            *uvicorn_command(
                host="127.0.0.1",
                port=self.port,
                app=APPS[self.kind],
                python=PYTHON,
                extra=["--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "2"],
            ),
        ]
        env = self.infra.django_env(prefix=self.redis_prefix) if self.kind == "ours" else {**os.environ}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        # uvicorn imports the app before it binds, so a listening port means ready.
        _wait_port(self.port, self.process, 60, f"{self.kind} server", self.log_path)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def thread_cpu(self) -> dict[int, float]:
        """CPU seconds of each thread, by native thread id (the main one's is the pid)."""
        ticks = os.sysconf("SC_CLK_TCK")
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                fields = Path(f"/proc/{self.pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
        return out

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
