"""How the product is served: one uvicorn process with the flags the README
explains (per-message compression off to keep an idle WebSocket under 50 KB;
no lifespan, which the Channels router does not speak; no proxy headers: uvicorn
would take X-Forwarded-For from any local peer, while the socket caps trust it
only as CHAT_TRUSTED_PROXIES says).

`python -m chatsite.serve` is what `make run` runs, on $HOST:$PORT; the tests'
server processes and `make bench` build their commands here too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from chatsite.env import env_int, env_str

SERVE_FLAGS = ("--ws-per-message-deflate", "false", "--lifespan", "off", "--no-proxy-headers")


def uvicorn_command(
    *,
    host: str,
    port: int,
    app: str = "chatsite.asgi:application",
    python: str = sys.executable,
    extra: Sequence[str] = (),
) -> list[str]:
    return [python, "-m", "uvicorn", app, "--host", host, "--port", str(port), *SERVE_FLAGS, *extra]


def main() -> None:
    command = uvicorn_command(host=env_str("HOST", "127.0.0.1"), port=env_int("PORT", 8000, minimum=1))
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)


if __name__ == "__main__":
    main()
